/*
 * `wisp migrate --api-sock PATH --to tcp:HOST:PORT|unix:PATH [--downtime-ms N]
 * [--max-rounds N] [--bandwidth-mbps N]` (docs/MIGRATION.md): start a live
 * migration with PUT /migration, then poll GET /migration and show the
 * progress (round, dirty pages, MB/s, estimated time left) on stderr until
 * it completes (exit 0) or fails or is cancelled (exit 1; the VM keeps
 * running on the source).
 */
#include "vmm/api/api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIGRATE_REPLY_MAX 8192
#define MIGRATE_POLL_MS   200

static int cli_usage(const char *msg)
{
    fprintf(stderr,
            "wisp: error: %s (usage: wisp migrate --api-sock PATH --to tcp:HOST:PORT|unix:PATH "
            "[--downtime-ms N] [--max-rounds N] [--bandwidth-mbps N])\n",
            msg);
    return API_CLI_USAGE;
}

/* One request; *status and the body (NUL-terminated, in buf) on success. */
static int request(const char *sock, const char *method, const char *body, char *buf,
                   unsigned *status, const char **out_body)
{
    char req[1024];
    if (body)
        snprintf(req, sizeof(req),
                 "%s /migration HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 method, strlen(body), body);
    else
        snprintf(req, sizeof(req),
                 "%s /migration HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", method);
    size_t got = 0, off, blen;
    const char *why = "";
    int ret = api_client_exchange(sock, req, 10000, buf, MIGRATE_REPLY_MAX, &got, &why);
    if (ret < 0)
        return ret;
    if (api_client_parse_response(buf, got, status, &off, &blen) < 0)
        return -EPROTO;
    buf[off + blen] = '\0';
    *out_body = buf + off;
    return 0;
}

static const char *str_of(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static int64_t int_of(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

int api_cli_migrate(int argc, char *const argv[])
{
    const char *sock = NULL, *to = NULL;
    long downtime = 0, rounds = 0, bw = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("Usage: wisp migrate --api-sock PATH --to tcp:HOST:PORT|unix:PATH\n"
                   "         [--downtime-ms N] [--max-rounds N] [--bandwidth-mbps N]\n"
                   "The destination runs `wisp run ... --incoming URL`.  See docs/MIGRATION.md.\n");
            return API_CLI_OK;
        }
        if (i + 1 >= argc)
            return cli_usage("every option needs a value");
        const char *v = argv[++i];
        char *end;
        long n = strtol(v, &end, 10);
        bool num = *v && !*end && n >= 0;
        if (!strcmp(a, "--api-sock"))
            sock = v;
        else if (!strcmp(a, "--to"))
            to = v;
        else if (!strcmp(a, "--downtime-ms") && num && n > 0)
            downtime = n;
        else if (!strcmp(a, "--max-rounds") && num && n > 0)
            rounds = n;
        else if (!strcmp(a, "--bandwidth-mbps") && num)
            bw = n;
        else
            return cli_usage("unknown option or bad value");
    }
    if (!sock || !to)
        return cli_usage("--api-sock PATH and --to URL are required");

    json_object *o = json_object_new_object();
    if (!o)
        return API_CLI_NO_REPLY;
    json_object_object_add(o, "destination_url", json_object_new_string(to));
    if (downtime)
        json_object_object_add(o, "downtime_ms", json_object_new_int64(downtime));
    if (rounds)
        json_object_object_add(o, "max_rounds", json_object_new_int64(rounds));
    if (bw >= 0)
        json_object_object_add(o, "bandwidth_mbps", json_object_new_int64(bw));
    char body[600];
    snprintf(body, sizeof(body), "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);

    char *buf = malloc(MIGRATE_REPLY_MAX + 1);
    if (!buf)
        return API_CLI_NO_REPLY;
    unsigned status;
    const char *rb;
    int code = API_CLI_NO_REPLY;
    int ret = request(sock, "PUT", body, buf, &status, &rb);
    if (ret < 0) {
        fprintf(stderr, "wisp: error: migrate: API socket %s: %s\n", sock, strerror(-ret));
        goto out;
    }
    if (status != 202) {
        fprintf(stderr, "wisp: error: migrate: HTTP %u: %s\n", status, rb);
        code = API_CLI_REFUSED;
        goto out;
    }
    bool tty = isatty(STDERR_FILENO);
    uint32_t last_round = UINT32_MAX;
    for (;;) {
        nanosleep(&(struct timespec){0, MIGRATE_POLL_MS * 1000000L}, NULL);
        ret = request(sock, "GET", NULL, buf, &status, &rb);
        if (ret < 0 || status != 200) {
            fprintf(stderr,
                    "%swisp: error: migrate: lost the source's API (%s); check the "
                    "destination\n",
                    tty ? "\n" : "", ret < 0 ? strerror(-ret) : "bad reply");
            goto out;
        }
        json_object *s = json_tokener_parse(rb);
        if (!s) {
            fprintf(stderr, "wisp: error: migrate: bad status reply\n");
            goto out;
        }
        const char *state = str_of(s, "state");
        uint32_t round = (uint32_t)int_of(s, "round");
        if (!strcmp(state, "active") && (tty || round != last_round)) {
            int64_t left = int_of(s, "remaining_ms");
            json_object *mb;
            double mbs =
                json_object_object_get_ex(s, "mb_per_s", &mb) ? json_object_get_double(mb) : 0;
            char eta[32];
            if (left < 0)
                snprintf(eta, sizeof(eta), "time left unknown");
            else
                snprintf(eta, sizeof(eta), "~%lld ms left", (long long)left);
            fprintf(stderr, "%smigrate: round %u, %lld dirty pages, %.1f MB/s, %s%s",
                    tty ? "\r" : "", round, (long long)int_of(s, "dirty_pages"), mbs, eta,
                    tty ? "   " : "\n");
            last_round = round;
        } else if (!strcmp(state, "completed")) {
            fprintf(stderr,
                    "%smigrate: completed in %lld ms, guest paused %lld ms; the VM runs "
                    "on the destination\n",
                    tty ? "\n" : "", (long long)int_of(s, "total_ms"),
                    (long long)int_of(s, "downtime_ms"));
            code = API_CLI_OK;
            json_object_put(s);
            goto out;
        } else if (strcmp(state, "active") != 0) {
            fprintf(stderr, "%swisp: error: migrate: %s: %s; the VM keeps running here\n",
                    tty ? "\n" : "", state, str_of(s, "error"));
            code = API_CLI_REFUSED;
            json_object_put(s);
            goto out;
        }
        json_object_put(s);
    }
out:
    free(buf);
    return code;
}
