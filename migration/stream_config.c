/*
 * The CONFIG section (stream_config.h): the machine's options as text
 * pairs, framed and bounded.  The bytes come from a file another process
 * may have written, so every count and length is checked before it is
 * used and a section with one bad entry yields nothing.
 */
#include "migration/stream_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PFX "snapshot: section \"config\": "

static bool key_ok(const char *k, size_t n)
{
    if (n == 0 || n > MIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* 1..MIG_CONFIG_MAX_VALUE bytes of printable ASCII (no NUL, no control bytes). */
static bool value_ok(const char *v, size_t n)
{
    if (n == 0 || n > MIG_CONFIG_MAX_VALUE)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return true;
}

void mig_config_init(struct mig_config *c)
{
    memset(c, 0, sizeof(*c));
}

void mig_config_free(struct mig_config *c)
{
    for (uint32_t i = 0; i < c->n && i < MIG_CONFIG_MAX_ENTRIES; i++)
        free(c->e[i].value);
    mig_config_init(c);
}

/* Append n bytes of value (checked by the caller) under key. */
static int add_n(struct mig_config *c, const char *key, size_t klen, const char *value, size_t vlen)
{
    if (c->n >= MIG_CONFIG_MAX_ENTRIES)
        return -ENOSPC;
    char *v = malloc(vlen + 1);
    if (!v)
        return -ENOMEM;
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    memcpy(c->e[c->n].key, key, klen);
    c->e[c->n].key[klen] = '\0';
    c->e[c->n].value = v;
    c->n++;
    return 0;
}

int mig_config_add(struct mig_config *c, const char *key, const char *value)
{
    if (!key || !value)
        return -EINVAL;
    size_t kl = strnlen(key, MIG_NAME_MAX + 1), vl = strnlen(value, MIG_CONFIG_MAX_VALUE + 1);
    if (!key_ok(key, kl) || !value_ok(value, vl))
        return -EINVAL;
    return add_n(c, key, kl, value, vl);
}

int mig_config_encode(const struct mig_config *c, struct vstate_out *o)
{
    if (c->n > MIG_CONFIG_MAX_ENTRIES)
        return -EINVAL;
    size_t start = o->len;
    vstate_put_u32(o, c->n);
    for (uint32_t i = 0; i < c->n; i++) {
        const struct mig_config_entry *e = &c->e[i];
        size_t kl = strnlen(e->key, sizeof(e->key));
        size_t vl = e->value ? strnlen(e->value, MIG_CONFIG_MAX_VALUE + 1) : 0;
        if (kl == sizeof(e->key) || !key_ok(e->key, kl) || !e->value || !value_ok(e->value, vl))
            return -EINVAL;
        vstate_put_u8(o, (uint8_t)kl);
        vstate_put_bytes(o, e->key, kl);
        vstate_put_u16(o, (uint16_t)vl);
        vstate_put_bytes(o, e->value, vl);
    }
    if (o->err)
        return o->err;
    return o->len - start > MIG_CONFIG_MAX_LEN ? -E2BIG : 0;
}

static int bad(struct mig_config *c, struct errbuf *err, uint32_t i, const char *what)
{
    mig_config_free(c);
    return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "entry %u: %s", i, what);
}

int mig_config_decode(const struct mig_section *s, struct mig_config *c, struct errbuf *err)
{
    mig_config_init(c);
    if (s->id != MIG_SEC_CONFIG || s->len > MIG_CONFIG_MAX_LEN)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "not a config section or too long");
    struct vstate_in in;
    vstate_in_init(&in, s->payload, s->len);
    uint32_t n = vstate_get_u32(&in);
    if (in.err)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "cut short before the count");
    /* The count is bounded before the loop that uses it. */
    if (n > MIG_CONFIG_MAX_ENTRIES)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "%u entries (at most %u)", n,
                       MIG_CONFIG_MAX_ENTRIES);
    for (uint32_t i = 0; i < n; i++) {
        char key[MIG_NAME_MAX + 1];
        uint8_t kl = vstate_get_u8(&in);
        if (in.err || kl == 0 || kl > MIG_NAME_MAX)
            return bad(c, err, i, "key cut short or of a bad length");
        vstate_get_bytes(&in, key, kl);
        if (in.err || !key_ok(key, kl))
            return bad(c, err, i, "key cut short or malformed");
        uint16_t vl = vstate_get_u16(&in);
        /* Length checked against what is left before anything is read or allocated. */
        if (in.err || vl == 0 || vl > MIG_CONFIG_MAX_VALUE || vl > in.len - in.pos)
            return bad(c, err, i, "value cut short or of a bad length");
        const char *v = (const char *)in.buf + in.pos;
        if (!value_ok(v, vl))
            return bad(c, err, i, "value holds a byte that is not printable ASCII");
        in.pos += vl;
        if (add_n(c, key, kl, v, vl) < 0) {
            mig_config_free(c);
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        }
    }
    if (in.pos != in.len) {
        mig_config_free(c);
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "trailing bytes");
    }
    return 0;
}

int mig_config_write(struct mig_stream_writer *w, const struct mig_config *c, struct errbuf *err)
{
    struct vstate_out o;
    vstate_out_init(&o);
    int e = mig_config_encode(c, &o);
    if (e < 0) {
        vstate_out_free(&o);
        return err_set(err, WISP_EXIT_FAILURE, -e, "snapshot: cannot encode the configuration: %s",
                       strerror(-e));
    }
    e = mig_stream_write_section(w, MIG_SEC_CONFIG, 0, MIG_CONFIG_VERSION, 0, o.buf, o.len);
    vstate_out_free(&o);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, "snapshot: writing the configuration: %s",
                       strerror(-e));
    return 0;
}
