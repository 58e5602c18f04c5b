//! VM test: a real boot, locked down. A Debian 12 root (mmdebstrap: systemd as PID 1, dracut) is
//! packed into one RPM with rpmbuild, signed with `rpm-verity sign`, installed with rpm (plus an
//! unsigned package planting three executables and a library) into an ext4 `-O verity` image;
//! `audit --lockdown --root` lists exactly the planted files before anything is applied;
//! `rpm-verity enable --all` runs in a first boot (6.12). The root then boots for real through
//! OVMF (UEFI) on Debian's 6.12 kernel with an initramfs built by the root's own dracut with
//! rpm-verity's module (`dist/dracut/90rpm-verity`) and the signed policy:
//! - policy signer in the UEFI db: the policy is active before the real root's systemd starts,
//!   the system reaches multi-user.target with no failed unit and no IPE denial but the test's
//!   own: copies of a signed binary, the planted programs and library are refused; `lockdown
//!   status` reports the policy; the live `audit --lockdown` lists the planted files;
//! - same image, signer not enrolled: the boot goes on unlocked, and the kernel log and the
//!   journal say why (rpm-verity's "the policy signer is not enrolled").
//!
//! The heavy steps are shell scripts (tests/vm/debian-root.sh, real-root.sh, boot-uefi.sh,
//! guests/real-boot-*.sh) so that they can be replayed by hand; this test orders them, times
//! them and checks what the guest reports. Needs root (mmdebstrap, chroot for dracut), qemu,
//! ovmf, virt-fw-vars, rpm, e2fsprogs, openssl, cpio; nothing is mocked.
use verity_test_support::vm::{
    args, boot, make_cert, repo_root, run, sha256_file as sha256_hex, vm_run, vm_script as script,
    Steps,
};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn bin() -> &'static str {
    verity_test_support::bin!()
}

fn stdout(cmd: &mut Command) -> String {
    verity_test_support::vm::stdout(cmd).trim().to_string()
}

/// Wall-clock time of each step, printed at the end (and on failure, with the output).
struct Timer {
    start: Instant,
    last: Instant,
    steps: Vec<(String, f64)>,
}

impl Timer {
    fn new() -> Self {
        let now = Instant::now();
        Timer {
            start: now,
            last: now,
            steps: Vec::new(),
        }
    }

    fn lap(&mut self, what: &str) {
        let now = Instant::now();
        let secs = (now - self.last).as_secs_f64();
        self.last = now;
        eprintln!("real-boot timing: {what}: {secs:.1} s");
        self.steps.push((what.to_string(), secs));
    }

    fn total(&self) {
        eprintln!(
            "real-boot timing: total {:.1} s",
            self.start.elapsed().as_secs_f64()
        );
    }
}

fn real_root(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(script("real-root.sh"));
    for a in args {
        cmd.arg(a);
    }
    stdout(&mut cmd)
}

/// What the test adds to the Debian root before packing it: rpm-verity itself, its dracut
/// module, the file-signing certificate, and the check service that reports the boot.
fn populate(stage: &Path, files_cert: &Path) {
    let repo = repo_root();
    verity_test_support::strip_debug(Path::new(bin()), &stage.join("usr/bin/rpm-verity"));
    let module = stage.join("usr/lib/dracut/modules.d/90rpm-verity");
    fs::create_dir_all(&module).unwrap();
    for entry in fs::read_dir(repo.join("dist/dracut/90rpm-verity")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), module.join(entry.file_name())).unwrap();
    }
    let lib = stage.join("usr/lib/rpm-verity");
    fs::create_dir_all(&lib).unwrap();
    fs::copy(repo.join("dist/lib/initramfs.sh"), lib.join("initramfs.sh")).unwrap();
    let certs = stage.join("etc/rpm-verity/certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(files_cert, certs.join("files.pem")).unwrap();
    let libexec = stage.join("usr/local/libexec");
    fs::create_dir_all(&libexec).unwrap();
    fs::copy(
        script("guests/real-boot-check.sh"),
        libexec.join("rpm-verity-vm-check"),
    )
    .unwrap();
    let units = stage.join("etc/systemd/system");
    fs::copy(
        script("guests/rpm-verity-vm-check.service"),
        units.join("rpm-verity-vm-check.service"),
    )
    .unwrap();
    let wants = units.join("multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "../rpm-verity-vm-check.service",
        wants.join("rpm-verity-vm-check.service"),
    )
    .unwrap();
}

/// Three executables and a library that no package signs (a second, unsigned RPM): what
/// `audit --lockdown` must list and the locked system must refuse to run.
fn planted_tree(dir: &Path, stage: &Path) {
    let bin = dir.join("usr/local/bin");
    let lib = dir.join("usr/local/lib/planted");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&lib).unwrap();
    fs::copy(stage.join("usr/bin/true"), bin.join("planted-true")).unwrap();
    fs::copy(stage.join("usr/bin/echo"), bin.join("planted-echo")).unwrap();
    fs::write(bin.join("planted-script"), "#!/bin/sh\necho planted\n").unwrap();
    let libc = stage.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    fs::copy(&libc, lib.join("libc.so.6")).unwrap();
    run(Command::new("chmod")
        .arg("755")
        .arg(bin.join("planted-true"))
        .arg(bin.join("planted-echo"))
        .arg(bin.join("planted-script")));
}

/// An OVMF variable store with `cert` in the UEFI db (the kernel puts db certificates in
/// `.platform`, which IPE trusts for policy signatures).
fn vars_with_db(cert: &Path, out: &Path) {
    run(Command::new("virt-fw-vars")
        .args(["-i", "/usr/share/OVMF/OVMF_VARS_4M.fd", "--add-db"])
        .arg("a7e0f8a6-5c0e-4d3a-9c1b-6a1b2c3d4e5f")
        .arg(cert)
        .arg("-o")
        .arg(out));
}

fn cpio_list(initrd: &Path) -> Vec<String> {
    let out = run(Command::new("cpio")
        .args(["-i", "-t", "--quiet", "-F"])
        .arg(initrd));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn boot_uefi(
    vars: &Path,
    initrd: &Path,
    disk: &Path,
    append: &str,
    console: &Path,
) -> (Steps, String) {
    let text = vm_run(
        "boot-uefi.sh",
        args(&[
            &"--vars",
            &vars,
            &"--initrd",
            &initrd,
            &"--disk",
            &disk,
            &"--append",
            &append,
            &"--console",
            &console,
        ]),
    );
    (Steps::parse(&text), text)
}

/// The checks every boot of this root must pass, locked down or not: systemd brought the
/// system up with no unit failed and the certificate came from the initramfs.
fn assert_booted(g: &Steps) {
    let state = g.ok("system-state");
    assert!(
        state == "running" || state == "degraded",
        "is-system-running: {state}"
    );
    g.ok_eq("multi-user", "active");
    assert_eq!(g.ok("failed-units"), "", "failed units");
    g.ok("signed-runs");
    g.ok("signed-lib-runs");
    let keyring = g.ok("keyring");
    assert!(
        keyring.contains("rpm-verity boot files"),
        "file-signing certificate not in .fs-verity: {keyring}"
    );
}

/// Index of the first kernel-log line (as the guest printed it) containing `needle`.
fn dmesg_pos(dmesg: &[&str], needle: &str) -> Option<usize> {
    dmesg.iter().position(|l| l.contains(needle))
}

fn dmesg_of(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix("DMESG "))
        .collect()
}

/// The locked boot: the policy was applied in the initramfs before the real root's systemd
/// ran, and from then on only signed files execute.
fn assert_locked(g: &Steps, report: &str, policy_sha256: &str) {
    assert_booted(g);
    let dmesg = dmesg_of(report);
    let activated = dmesg_pos(&dmesg, "type=1421").expect("no IPE activation (1421) in dmesg");
    let applied = dmesg_pos(&dmesg, "rpm-verity: lockdown applied from")
        .expect("no 'lockdown applied' line from the dracut hook");
    // systemd announces itself twice: in the initramfs, and as the real root's PID 1 (which
    // also sets the root's hostname; the initramfs has none).
    let starts: Vec<usize> = dmesg
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("systemd[1]: systemd ") && l.contains("running in system mode"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "systemd start lines: {starts:?}");
    let real_hostname = dmesg_pos(&dmesg, "Hostname set to <rpm-verity-guest>")
        .expect("the real root's systemd did not set its hostname");
    assert!(
        starts[0] < activated && applied < starts[1] && activated < starts[1],
        "policy activated (line {activated}) must come after the initramfs's systemd ({}) and \
         before the real root's ({})",
        starts[0],
        starts[1]
    );
    assert!(starts[1] < real_hostname);
    g.ok_eq("ipe-enforce", "1");
    g.ok_eq("ipe-policies", "rpm_verity");
    // Copies of a signed binary lose the signature: refused (exit 126, EACCES).
    let (rc, out) = g.get("copy-tmpfs");
    assert_eq!(*rc, 126, "copy on tmpfs ran: {out}");
    let (rc, out) = g.get("copy-ext4");
    assert_eq!(*rc, 126, "copy on ext4 ran: {out}");
    let (rc, out) = g.get("planted-exec");
    assert_eq!(*rc, 126, "unsigned packaged executable ran: {out}");
    let (rc, out) = g.get("planted-script");
    assert_eq!(*rc, 126, "unsigned packaged script ran: {out}");
    let (rc, out) = g.get("planted-lib");
    assert_eq!(*rc, 127, "unsigned libc via LD_LIBRARY_PATH loaded: {out}");
    // Every IPE denial of the boot is one of the test's own attempts: nothing systemd or a
    // unit needed was refused.
    for l in dmesg.iter().filter(|l| l.contains("type=1420")) {
        assert!(
            [
                "path=\"/run/true-copy\"",
                "path=\"/root/true-copy\"",
                "path=\"/usr/local/bin/planted-",
                "path=\"/usr/local/lib/planted/",
            ]
            .iter()
            .any(|p| l.contains(p))
                || l.contains("enforcing=0"),
            "IPE denied something the test did not ask for: {l}"
        );
    }
    let status = g.ok("lockdown-status");
    assert!(!status.is_empty());
    let json = g.json_line("lockdown-status");
    assert_eq!(json["locked_down"], true, "{json}");
    assert_eq!(json["signer_enrolled"], true, "{json}");
    assert_eq!(json["active_policy"]["name"], "rpm_verity", "{json}");
    assert_eq!(json["active_policy"]["sha256"], policy_sha256, "{json}");
    assert_eq!(json["fs_verity"]["restricted"], true, "{json}");
    let audit = g.json_line("audit-lockdown");
    assert_eq!(audit["mode"], "measured", "{audit}");
    assert_audit_lists_planted(&audit);
}

/// The same root and initramfs, signer not enrolled: the boot goes on unlocked and says why.
fn assert_unlocked(g: &Steps, report: &str) {
    assert_booted(g);
    let dmesg = dmesg_of(report);
    assert!(
        dmesg_pos(&dmesg, "rpm-verity: lockdown NOT applied from").is_some(),
        "no 'lockdown NOT applied' line in dmesg"
    );
    assert!(
        dmesg_pos(
            &dmesg,
            "rpm-verity: error: the policy signer is not enrolled"
        )
        .is_some(),
        "the reason (signer not enrolled) is not in dmesg"
    );
    assert!(
        dmesg_pos(&dmesg, "type=1421").is_none(),
        "a policy was activated"
    );
    assert_eq!(g.ok("ipe-policies"), "");
    g.ok("copy-tmpfs");
    g.ok("copy-ext4");
    g.ok("planted-exec");
    g.ok("planted-lib");
    let json = g.json_line("lockdown-status");
    assert_eq!(json["locked_down"], false, "{json}");
    assert_eq!(json["signer_enrolled"], false, "{json}");
    // The audit an administrator runs before the policy is applied: measured by the kernel.
    let audit = g.json_line("audit-lockdown");
    assert_eq!(audit["mode"], "measured", "{audit}");
    assert_audit_lists_planted(&audit);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("JOURNAL ") && l.contains("lockdown NOT applied")),
        "the message is not in the journal"
    );
}

/// The files `audit --lockdown` (JSON) says IPE would refuse, package by package, plus the
/// unowned ones under "(unowned)".
fn refused_files(audit: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in audit["packages"].as_array().expect("packages") {
        for f in p["files"].as_array().unwrap() {
            out.push(format!(
                "{} {}",
                p["package"].as_str().unwrap(),
                f["path"].as_str().unwrap()
            ));
        }
    }
    for f in audit["unowned"].as_array().expect("unowned") {
        out.push(format!("(unowned) {}", f["path"].as_str().unwrap()));
    }
    out.sort();
    out
}

/// Exactly the planted package's four files: three executables and the library.
fn assert_audit_lists_planted(audit: &serde_json::Value) {
    let want: Vec<String> = [
        "/usr/local/bin/planted-echo",
        "/usr/local/bin/planted-script",
        "/usr/local/bin/planted-true",
        "/usr/local/lib/planted/libc.so.6",
    ]
    .iter()
    .map(|p| format!("planted-1-1.x86_64 {p}"))
    .collect();
    assert_eq!(refused_files(audit), want, "{audit}");
    assert_eq!(audit["refused"], 4, "{audit}");
    assert!(
        audit["executables"].as_u64().unwrap() > 500,
        "too few executables looked at: {audit}"
    );
}

/// Signer enrolled, but `rd.rpm-verity.lockdown=0` on the command line (the documented way to
/// boot once unlocked): the hook loads the certificates and skips the policy.
fn assert_skipped(g: &Steps, report: &str) {
    assert_booted(g);
    let dmesg = dmesg_of(report);
    assert!(
        dmesg_pos(
            &dmesg,
            "rpm-verity: lockdown skipped (rd.rpm-verity.lockdown=0"
        )
        .is_some(),
        "no 'lockdown skipped' line in dmesg"
    );
    assert!(
        dmesg_pos(&dmesg, "type=1421").is_none(),
        "a policy was activated"
    );
    assert!(
        dmesg_pos(&dmesg, "rpm-verity: rpm-verity:").is_none(),
        "doubled prefix"
    );
    assert_eq!(g.ok("ipe-policies"), "");
    g.ok("copy-tmpfs");
    g.ok("planted-exec");
    let json = g.json_line("lockdown-status");
    assert_eq!(json["locked_down"], false, "{json}");
    assert_eq!(json["signer_enrolled"], true, "{json}");
}

#[test]
fn debian_root_from_signed_rpms_boots_locked_down_by_dracut_through_ovmf() {
    let mut t = Timer::new();
    let scratch = std::env::var_os("RPM_VERITY_VM_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let td = tempfile::tempdir_in(scratch).unwrap();
    let d = td.path();

    let tarball = stdout(Command::new("bash").arg(script("debian-root.sh")));
    t.lap("debian root (mmdebstrap, cached)");

    let (files_key, files_cert) = make_cert(d, "files", "boot");
    let (policy_key, policy_cert) = make_cert(d, "policy", "boot");
    let stage = d.join("stage");
    real_root(&[&"stage", &tarball, &stage]);
    populate(&stage, &files_cert);
    let policy = stage.join("etc/rpm-verity/lockdown/policy.p7b");
    fs::create_dir_all(policy.parent().unwrap()).unwrap();
    run(Command::new(bin())
        .args(["lockdown", "policy", "--allow-initramfs", "--signer-cert"])
        .arg(&policy_cert)
        .arg("--signer-key")
        .arg(&policy_key)
        .arg("-o")
        .arg(&policy));
    let policy_sha256 = sha256_hex(&policy);
    t.lap("stage");

    let initrd = d.join("initrd.img");
    real_root(&[&"initramfs", &stage, &initrd, &"--add", &"rpm-verity"]);
    let listing = cpio_list(&initrd);
    for want in [
        "usr/bin/rpm-verity",
        "etc/rpm-verity/certs/files.pem",
        "etc/rpm-verity/lockdown/policy.p7b",
        "usr/lib/dracut/hooks/pre-mount/10-rpm-verity-load.sh",
        "usr/lib/rpm-verity/initramfs.sh",
    ] {
        assert!(
            listing.iter().any(|l| l == want),
            "{want} missing from the dracut initramfs"
        );
    }
    t.lap("dracut");

    let rpms = d.join("rpms");
    let rpm = real_root(&[&"package", &stage, &rpms, &"debian-root"]);
    let planted = d.join("planted");
    planted_tree(&planted, &stage);
    let planted_rpm = real_root(&[&"package", &planted, &rpms, &"planted"]);
    fs::remove_dir_all(&stage).unwrap();
    t.lap("rpmbuild");
    run(Command::new(bin())
        .args(["sign", "--key"])
        .arg(&files_key)
        .arg("--cert")
        .arg(&files_cert)
        .arg(&rpm));
    t.lap("rpm-verity sign");

    let root = d.join("root");
    real_root(&[&"install", &root, &rpm, &planted_rpm]);
    // Before anything is applied (or even booted): the offline audit of the installed root.
    let out = Command::new(bin())
        .args(["audit", "--lockdown", "--json", "--root"])
        .arg(&root)
        .arg("--cert")
        .arg(&files_cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "audit --lockdown exit status");
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(audit["mode"], "offline", "{audit}");
    assert_audit_lists_planted(&audit);
    let img = d.join("root.img");
    real_root(&[&"image", &root, &img]);
    fs::remove_dir_all(&root).unwrap();
    fs::remove_dir_all(&rpms).unwrap();
    t.lap("rpm -i + mkfs.ext4");

    let g = boot(args(&[
        &"--kernel",
        &"6.12",
        &"--timeout",
        &"900",
        &"--disk",
        &img,
        &"--bin",
        &bin(),
        &"--file",
        &format!("{}:/data/files.pem", files_cert.display()),
        &script("guests/real-boot-enable.sh"),
    ]));
    g.ok("keyring-load");
    let enabled = g.json("enable", 0);
    eprintln!(
        "enable: summary {} skipped {}",
        enabled["summary"], enabled["skipped"]
    );
    assert!(
        enabled["summary"]["ENABLED"].as_u64().unwrap() > 3000,
        "{}",
        enabled["summary"]
    );
    let unsigned = enabled["unsigned_packages"].to_string();
    assert!(
        unsigned.contains("planted-1-1") && !unsigned.contains("debian-root"),
        "unsigned packages: {unsigned}"
    );
    t.lap("enable --all (VM, 6.12)");

    let append = "sysctl.kernel.printk_ratelimit=0 printk.devkmsg=on";
    let vars = d.join("vars-db.fd");
    vars_with_db(&policy_cert, &vars);
    let (g, report) = boot_uefi(&vars, &initrd, &img, append, &d.join("console-locked.log"));
    assert_locked(&g, &report, &policy_sha256);
    t.lap("UEFI boot, policy signer in db: locked");

    let (g, report) = boot_uefi(
        Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd"),
        &initrd,
        &img,
        append,
        &d.join("console-unenrolled.log"),
    );
    assert_unlocked(&g, &report);
    t.lap("UEFI boot, signer not enrolled: unlocked");

    let (g, report) = boot_uefi(
        &vars,
        &initrd,
        &img,
        &format!("{append} rd.rpm-verity.lockdown=0"),
        &d.join("console-skipped.log"),
    );
    assert_skipped(&g, &report);
    t.lap("UEFI boot, signer in db, rd.rpm-verity.lockdown=0: unlocked");
    t.total();
}
