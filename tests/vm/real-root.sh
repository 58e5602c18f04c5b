#!/usr/bin/env bash
# Steps of the real-boot test (crates/cli/tests/vm_lockdown_boot.rs), one subcommand each, so the
# test can time and check them one by one and a person can replay them by hand:
#
#   stage TARBALL DIR            extract the Debian root from debian-root.sh (no /dev nodes)
#   initramfs DIR OUT [ARGS...]  run the root's own dracut (chroot) for the 6.12 test kernel,
#                                uncompressed, generic (no host-only); ARGS go to dracut
#   package DIR OUTDIR NAME      pack every file, symlink and directory of DIR (except /dev, /proc,
#                                /sys, /run, /tmp content) into OUTDIR/NAME-1-1.x86_64.rpm;
#                                regular files under /etc and /var are %config, as a distribution
#                                marks them: `enable` leaves the non-executable ones writable
#                                (systemd writes /etc/machine-id on the first boot)
#   install ROOT RPM...          rpm --root ROOT -i, rpmdb in ROOT/var/lib/rpm, rpm's fsverity
#                                plugin off, no scriptlets (the root has no rpm of its own)
#   image ROOT IMG               ext4 with verity, 4 KiB blocks, from ROOT (sized to fit)
#
# Needs root: the staged tree keeps the files' real owners, and dracut runs chrooted into it.
set -euo pipefail

die() { echo "vm/real-root: error: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root"

cmd=${1:-}
shift || true
case $cmd in
stage)
    tarball=$1 dir=$2
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -x -C "$dir" --exclude='./dev/*' -f "$tarball"
    ;;
initramfs)
    dir=$1 out=$2
    shift 2
    kver=$(ls "$dir/usr/lib/modules")
    [[ -n $kver && $(wc -w <<<"$kver") == 1 ]] || die "expected one kernel in $dir/usr/lib/modules"
    # A private mount namespace: /proc and /dev for dracut vanish with it.
    unshare --mount --propagation private -- bash -euc '
        dir=$1 kver=$2; shift 2
        mount -t proc proc "$dir/proc"
        mount --rbind /dev "$dir/dev"
        mount -t tmpfs tmp "$dir/tmp"
        chroot "$dir" dracut --quiet --force --no-hostonly --no-hostonly-cmdline \
            --no-compress --kver "$kver" "$@" /tmp/initrd.img
        cp "$dir/tmp/initrd.img" "$dir/../initrd.img.tmp"
    ' - "$dir" "$kver" "$@"
    mv "$dir/../initrd.img.tmp" "$out"
    ;;
package)
    dir=$1 outdir=$2 name=$3
    top=$(mktemp -d "${TMPDIR:-/tmp}/rpm-verity-pkg.XXXXXX")
    trap 'rm -rf "$top"' EXIT
    mkdir -p "$top/SPECS" "$outdir"
    # The file list: directories as %dir, everything else by path. rpm globs file names, so
    # glob characters become one-character bracket expressions (`[` as `[[]`: a backslash is kept
    # literally); every path is quoted for spaces.
    # One pass of find + awk: a process per file would cost minutes for a whole root.
    (cd "$dir" && find . -mindepth 1 \
        \( -path ./dev -o -path ./proc -o -path ./sys -o -path ./run -o -path ./tmp \) -prune -o \
        -printf '%y %P\n') |
        awk '{
            type = substr($0, 1, 1); p = "/" substr($0, 3)
            gsub(/[][?*{}]/, "[&]", p)
            if (type == "d") printf "%%dir \"%s\"\n", p
            else if (type == "f" && (p ~ /^\/etc\// || p ~ /^\/var\//)) printf "%%config(noreplace) \"%s\"\n", p
            else printf "\"%s\"\n", p
        }' >"$top/files"
    for d in dev proc sys run tmp; do
        if [[ -d $dir/$d ]]; then echo "%dir /$d" >>"$top/files"; fi
    done
    cat >"$top/SPECS/$name.spec" <<EOF
Name: $name
Version: 1
Release: 1
Summary: Debian root for the rpm-verity real-boot test
License: various
# No dependency generation: it classifies every file (libmagic) and takes minutes.
AutoReqProv: no
%description
The files of a small Debian 12 root (mmdebstrap), packed as one RPM.
%install
cp -a "$dir/." %{buildroot}/
%files -f $top/files
%defattr(-,-,-,-)
EOF
    rpmbuild -bb --quiet --define "_topdir $top" --define "_rpmdir $outdir" \
        --define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
        --define '_binary_payload w1.zstdio' \
        --define '__os_install_post %{nil}' --define '__arch_install_post %{nil}' \
        --define '_build_id_links none' --define 'debug_package %{nil}' \
        --define '_unpackaged_files_terminate_build 0' --define '__check_files %{nil}' \
        --define '_missing_doc_files_terminate_build 0' \
        --nodeps --target x86_64 "$top/SPECS/$name.spec" >&2 ||
        die "rpmbuild of $name failed"
    echo "$outdir/$name-1-1.x86_64.rpm"
    ;;
install)
    root=$1
    shift
    mkdir -p "$root"
    rpmdb --root "$root" --dbpath /var/lib/rpm --initdb
    rpm --root "$root" --dbpath /var/lib/rpm -i --nodeps --noscripts --notriggers \
        --define '__transaction_fsverity %{nil}' --define '__transaction_systemd_inhibit %{nil}' \
        --define '_pkgverify_level none' "$@"
    ;;
image)
    root=$1 img=$2
    mb=$(du -sm "$root" | cut -f1)
    rm -f "$img"
    mkfs.ext4 -q -F -O verity -b 4096 -L root -d "$root" "$img" "$((mb * 3 / 2 + 200))M"
    ;;
*)
    die "usage: real-root.sh stage|initramfs|package|install|image ..."
    ;;
esac
