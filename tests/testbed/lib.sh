# Shared settings for the nested testbed scripts (sourced, not run).
#
# Everything the testbed needs comes from Debian packages, downloaded (never
# installed) into $TB_DIR, so the host's /boot and /lib/modules stay untouched.

TB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TB_DIR=${TESTBED_DIR:-$TB_REPO/build/testbed}
TB_APT=$TB_DIR/apt
TB_DEBS=$TB_DIR/debs

tb_log() { echo "testbed: $*" >&2; }
tb_die() { echo "testbed: error: $*" >&2; exit 1; }

# apt-get/apt-cache against a private configuration: bookworm and
# bookworm-backports, with lists and caches under $TB_APT.  The host's own
# sources and state are only read (dpkg status), never changed.
tb_apt_opts() {
    echo "-o Dir::Etc::SourceList=$TB_APT/sources.list -o Dir::Etc::SourceParts=/dev/null" \
         "-o Dir::State::Lists=$TB_APT/lists -o Dir::Cache=$TB_APT/cache" \
         "-o Debug::NoLocking=1 -o APT::Sandbox::User=root"
}

# L1's CPU: QEMU's EPYC model (AMD, so SVM with nested paging: TCG does not
# emulate Intel VMX), less the features TCG cannot provide, which QEMU would
# otherwise warn about on every start.
TB_CPU=EPYC,rdseed=off,sha-ni=off,fxsr-opt=off,misalignsse=off,3dnowprefetch=off,osvw=off,topoext=off,nrip-save=off,xsavec=off
