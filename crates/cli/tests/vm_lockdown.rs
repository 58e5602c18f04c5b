//! VM test: `rpm-verity lockdown` on Debian's 6.12 kernel (IPE) under qemu (TCG).
//!
//! 1. Booted through OVMF with the policy signer's certificate in the UEFI db (a variable store
//!    made by `virt-fw-vars --add-db`), so the kernel puts it in `.platform`: bad policy files
//!    are refused with nothing written; a policy signed by another key gets the enrolment
//!    message (ENOKEY); the real policy is applied (idempotently), and then signed binaries
//!    run while an unsigned copy, a verity file without signature, an unsigned library via
//!    `LD_LIBRARY_PATH`, an unsigned `#!` script and a file signed by a certificate added after
//!    `apply` are refused; updates must raise the version; a tampered policy is refused.
//! 2. The same boot with `ipe.enforce=0` (the way back): the policy deploys, `status` reports
//!    it is not enforcing, the unsigned copy runs and IPE logs the denial with enforcing=0.
//! 3. Booted directly (PVH, no firmware, nothing enrolled): no policy can be deployed, and the
//!    message says why (ENOKEY explained).
//!
//! Needs qemu, ovmf, virt-fw-vars (PyPI virt-firmware), busybox, openssl, fsverity, keyctl and
//! e2fsprogs on the host (scripts/install-deps); nothing is mocked.
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use verity_test_support::installed::install_into;
use verity_test_support::rpmbuild as rpmsupport;
use verity_test_support::vm::{
    boot as vm_boot, der, fsverity_sign, make_cert, mkfs_ext4, run, sha256_file as sha256,
    vm_script, Steps,
};

fn bin() -> &'static str {
    verity_test_support::bin!()
}

fn policy(dir: &Path, cert: &Path, key: &Path, version: &str, out: &str) -> PathBuf {
    let path = dir.join(out);
    run(Command::new(bin())
        .args([
            "lockdown",
            "policy",
            "--allow-initramfs",
            "--version",
            version,
        ])
        .arg("--signer-cert")
        .arg(cert)
        .arg("--signer-key")
        .arg(key)
        .arg("-o")
        .arg(&path));
    path
}

struct Setup {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    image: PathBuf,
    policy_cert: PathBuf,
    files_cert: PathBuf,
}

/// Everything both boots use: certificates, policies (good and bad), the ext4 image with the
/// binaries, and their signatures.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    fs::create_dir_all(data.join("certs")).unwrap();
    let (pol_key, pol_cert) = make_cert(t, "policy", "policy signer");
    let (files_key, files_cert) = make_cert(t, "files", "file signing");
    let (late_key, late_cert) = make_cert(t, "late", "late");
    let (stranger_key, stranger_cert) = make_cert(t, "stranger", "unenrolled policy signer");
    fs::copy(&files_cert, data.join("certs/files.pem")).unwrap();
    fs::copy(&late_cert, data.join("late.pem")).unwrap();
    der(&late_cert, &data.join("late.der"));

    let p1 = policy(&data, &pol_cert, &pol_key, "0.0.1", "policy.p7b");
    policy(&data, &pol_cert, &pol_key, "0.0.2", "policy-v2.p7b");
    policy(
        &data,
        &stranger_cert,
        &stranger_key,
        "0.0.1",
        "stranger.p7b",
    );
    // A higher version whose text was changed after signing: only the kernel can tell.
    let v9 = policy(t, &pol_cert, &pol_key, "0.0.9", "v9.p7b");
    let mut tampered = fs::read(&v9).unwrap();
    let at = tampered
        .windows(12)
        .position(|w| w == b"action=ALLOW")
        .unwrap();
    tampered[at + 7] = b'D'; // "DEFAULT action=DLLOW"... still one token, and unsigned
    fs::write(data.join("tampered.p7b"), &tampered).unwrap();

    let good = fs::read(&p1).unwrap();
    fs::write(data.join("bad-truncated.p7b"), &good[..good.len() / 2]).unwrap();
    let mut corrupted = good.clone();
    corrupted[1] ^= 0x40; // the outer length
    fs::write(data.join("bad-corrupted.p7b"), &corrupted).unwrap();
    let mut oversized = good.clone();
    oversized.resize(5 << 20, 0);
    fs::write(data.join("bad-oversized.p7b"), &oversized).unwrap();
    let text = run(Command::new(bin())
        .args(["lockdown", "policy", "--print", "--allow-initramfs"])
        .arg("--signer-cert")
        .arg(&pol_cert)
        .arg("--signer-key")
        .arg(&pol_key))
    .stdout;
    fs::write(data.join("bad-plain.p7b"), text).unwrap();

    // The image: busybox copies (static, so only they are executed), a dynamic binary, an
    // unsigned libc for LD_LIBRARY_PATH, a script.
    let root = t.join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("lib")).unwrap();
    let busybox = PathBuf::from(
        String::from_utf8(run(Command::new("sh").args(["-c", "command -v busybox"])).stdout)
            .unwrap()
            .trim(),
    );
    for name in [
        "busybox-signed",
        "busybox-unsigned",
        "busybox-nosig",
        "busybox-late",
    ] {
        fs::copy(&busybox, root.join("bin").join(name)).unwrap();
    }
    fs::copy("/usr/bin/true", root.join("bin/dyn")).unwrap();
    fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        root.join("lib/libc.so.6"),
    )
    .unwrap();
    fs::write(root.join("bin/script.sh"), "#!/bin/sh\necho script ran\n").unwrap();
    for f in fs::read_dir(root.join("bin")).unwrap() {
        fs::set_permissions(f.unwrap().path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fsverity_sign(&busybox, &data.join("signed.sig"), &files_key, &files_cert);
    fsverity_sign(
        &root.join("bin/dyn"),
        &data.join("dyn.sig"),
        &files_key,
        &files_cert,
    );
    fsverity_sign(&busybox, &data.join("late.sig"), &late_key, &late_cert);
    // A detached built-in signature is a PKCS#7 too, but carries no policy.
    fs::copy(data.join("signed.sig"), data.join("bad-detached.p7b")).unwrap();

    // Two packages for `audit --lockdown` on the running system: "tools" signed with the
    // file-signing key, "plain" unsigned; their rpmdb goes to the guest's /var/lib/rpm.
    let build = t.join("build");
    fs::create_dir_all(&build).unwrap();
    let tools = rpmsupport::build_rpm_custom(
        &build,
        "tools",
        "w9.gzdio",
        "mkdir -p %{buildroot}/usr/sbin %{buildroot}/usr/libexec\n\
         cp /usr/bin/true %{buildroot}/usr/sbin/tool\n\
         printf '#!/bin/sh\\necho helper\\n' > %{buildroot}/usr/libexec/helper\n\
         chmod 0755 %{buildroot}/usr/libexec/helper\n",
        "/usr/sbin/tool\n/usr/libexec/helper\n",
    );
    let plain = rpmsupport::build_rpm_custom(
        &build,
        "plain",
        "w9.gzdio",
        "mkdir -p %{buildroot}/usr/sbin\ncp /usr/bin/true %{buildroot}/usr/sbin/plain-tool\n",
        "/usr/sbin/plain-tool\n",
    );
    run(Command::new(bin())
        .args(["sign", "--key"])
        .arg(&files_key)
        .arg("--cert")
        .arg(&files_cert)
        .arg(&tools));
    let installed = t.join("installed");
    install_into(&installed, &[&tools, &plain]);
    run(Command::new("cp")
        .arg("-a")
        .arg(installed.join("usr"))
        .arg(&root));
    run(Command::new("cp")
        .arg("-a")
        .arg(installed.join("var/lib/rpm"))
        .arg(data.join("rpmdb")));
    fs::copy("/usr/bin/true", root.join("usr/libexec/planted")).unwrap();

    let image = t.join("disk.img");
    mkfs_ext4(&root, &image, true, "64M");
    Setup {
        data,
        image,
        policy_cert: pol_cert,
        files_cert,
        _tmp: tmp,
    }
}

fn boot(s: &Setup, ovmf: Option<&Path>, phase: &str) -> Steps {
    boot_with(s, ovmf, phase, None)
}

fn boot_with(s: &Setup, ovmf: Option<&Path>, phase: &str, append: Option<&str>) -> Steps {
    let mut args: Vec<OsString> = ["--kernel", "6.12", "--timeout", "400", "--bin"]
        .map(OsString::from)
        .into();
    args.push(bin().into());
    if let Some(a) = append {
        args.extend(["--append".into(), a.into()]);
    }
    args.extend(["--disk".into(), s.image.clone().into(), "--file".into()]);
    args.push(format!("{}:/lockdown", s.data.display()).into());
    args.push("--file".into());
    args.push(format!("{}:/var/lib/rpm", s.data.join("rpmdb").display()).into());
    if let Some(vars) = ovmf {
        args.extend(["--ovmf".into(), vars.into()]);
    }
    args.extend([vm_script("guests/lockdown.sh").into(), phase.into()]);
    vm_boot(args)
}

/// A boot through OVMF (signer in the db) where the shipped initramfs-tools script runs first,
/// as the initramfs runs it before the root is mounted (run.sh `--pre`), with what the hook
/// puts into the initramfs: rpm-verity as /usr/bin/rpm-verity, the shared boot steps, the
/// certificates and the signed policy under /etc/rpm-verity.
fn boot_initramfs_tools(s: &Setup, vars: &Path, phase: &str, append: Option<&str>) -> Steps {
    let repo = verity_test_support::vm::repo_root();
    let etc = s.data.parent().unwrap().join(format!("etc-{phase}"));
    fs::create_dir_all(etc.join("certs")).unwrap();
    fs::create_dir_all(etc.join("lockdown")).unwrap();
    fs::copy(s.data.join("certs/files.pem"), etc.join("certs/files.pem")).unwrap();
    fs::copy(s.data.join("policy.p7b"), etc.join("lockdown/policy.p7b")).unwrap();
    let mut args: Vec<OsString> = ["--kernel", "6.12", "--timeout", "400", "--bin"]
        .map(OsString::from)
        .into();
    args.push(bin().into());
    args.push("--bin".into());
    args.push(format!("{}:/usr/bin/rpm-verity", bin()).into());
    if let Some(a) = append {
        args.extend(["--append".into(), a.into()]);
    }
    for (src, dst) in [
        (s.data.clone(), "/lockdown".to_string()),
        (etc, "/etc/rpm-verity".to_string()),
        (
            repo.join("dist/lib/initramfs.sh"),
            "/usr/lib/rpm-verity/initramfs.sh".to_string(),
        ),
    ] {
        args.push("--file".into());
        args.push(format!("{}:{dst}", src.display()).into());
    }
    args.extend(["--disk".into(), s.image.clone().into()]);
    args.extend(["--ovmf".into(), vars.into(), "--pre".into()]);
    args.push(
        repo.join("dist/initramfs-tools/scripts/init-premount/rpm-verity")
            .into(),
    );
    args.extend([vm_script("guests/lockdown.sh").into(), phase.into()]);
    vm_boot(args)
}

fn json(steps: &Steps, name: &str) -> Value {
    steps.json(name, 0)
}

/// The refusals every boot makes before the kernel is involved, and that nothing was written.
fn assert_bad_files_refused(steps: &Steps) {
    let before = steps.ok("state-before").to_string();
    assert!(before.starts_with("policies=[]"), "{before}");
    for (bad, words) in [
        ("truncated", "is not a signed IPE policy"),
        ("corrupted", "is not a signed IPE policy"),
        (
            "oversized",
            "more than the 4194303 bytes the kernel accepts",
        ),
        ("plain", "is not a signed IPE policy"),
        ("detached", "carries no content"),
    ] {
        let out = steps.rc(&format!("bad-{bad}"), 1);
        assert!(
            out.contains(&format!("bad-{bad}.p7b")) && out.contains(words),
            "bad-{bad}: {out}"
        );
    }
    assert_eq!(
        steps.ok("state-after-bad"),
        before,
        "a bad policy changed state"
    );
    let st = json(steps, "status-after-bad");
    assert_eq!(st["policies"], serde_json::json!([]));
    assert_eq!(st["fs_verity"]["restricted"], false);
    assert_eq!(st["fs_verity"]["certificates"], serde_json::json!([]));
}

/// An OVMF variable store with the policy signer's certificate in the UEFI db.
fn db_vars(s: &Setup) -> PathBuf {
    let vars = s.data.parent().unwrap().join("vars.fd");
    run(Command::new("virt-fw-vars")
        .args(["-i", "/usr/share/OVMF/OVMF_VARS_4M.fd", "--add-db"])
        .arg("605dab50-e046-4300-abb6-3dd810dd8b23")
        .arg(&s.policy_cert)
        .arg("-o")
        .arg(&vars));
    vars
}

#[test]
fn lockdown_through_ovmf_with_the_signer_in_the_uefi_db() {
    let s = setup();
    let vars = db_vars(&s);
    let steps = boot(&s, Some(&vars), "db");

    assert!(steps.ok("lsm").split(',').any(|l| l == "ipe"));
    let before = json(&steps, "status-before");
    assert_eq!(before["ipe"], true);
    assert_eq!(before["signer_enrolled"], true);
    assert_eq!(before["locked_down"], false);
    assert!(before["active_policy"].is_null());
    let platform = &before["signer_keyrings"][3];
    assert_eq!(platform["name"], ".platform");
    assert!(
        platform["keys"][0]
            .as_str()
            .unwrap()
            .contains("rpm-verity policy signer policy"),
        "{platform}"
    );
    assert_bad_files_refused(&steps);

    let stranger = steps.rc("apply-stranger", 1);
    assert!(
        stranger.contains(
            "the policy signer is not enrolled: enrol it as a MOK or in the UEFI db, see \
             docs/lockdown.md"
        ),
        "{stranger}"
    );
    assert!(steps.ok("state-after-stranger").starts_with("policies=[]"));

    steps.ok("enable-signed");
    steps.ok("enable-dyn");
    steps.ok("enable-nosig");
    let applied = steps.ok("apply");
    assert!(
        applied.contains("policy rpm_verity version 0.0.1: deployed")
            && applied.contains("activated"),
        "{applied}"
    );
    let again = json(&steps, "apply-again");
    assert_eq!(again["deployment"], "already-deployed");
    assert_eq!(again["activation"], "already-done");
    assert_eq!(again["restricted"], "already-done");
    assert_eq!(again["certificates"]["already_loaded"], 1);

    let st = json(&steps, "status");
    assert_eq!(st["locked_down"], true, "{st}");
    assert_eq!(st["enforce"], true);
    assert_eq!(st["fs_verity"]["restricted"], true);
    assert_eq!(st["active_policy"]["name"], "rpm_verity");
    assert_eq!(st["active_policy"]["version"], "0.0.1");
    assert_eq!(
        st["active_policy"]["sha256"],
        sha256(&s.data.join("policy.p7b"))
    );
    let certs = st["fs_verity"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1);
    assert!(certs[0]
        .as_str()
        .unwrap()
        .contains("rpm-verity file signing files"));
    steps.ok("status-check");

    assert_eq!(steps.ok("run-signed"), "signed runs");
    steps.ok("run-dyn");
    for refused in [
        "run-unsigned-copy",
        "run-copy-tmpfs",
        "run-verity-nosig",
        "run-script",
        "run-late",
    ] {
        let out = steps.rc(refused, 126);
        assert!(out.contains("Permission denied"), "{refused}: {out}");
    }
    let lib = steps.rc("run-unsigned-lib", 127);
    assert!(
        lib.contains("failed to map segment from shared object"),
        "{lib}"
    );
    assert_eq!(steps.ok("sh-script"), "script ran");
    assert_eq!(steps.ok("read-unsigned"), "\x7fELF");
    assert!(steps.rc("add-late", 1).contains("Operation not permitted"));
    assert!(steps.rc("load-late", 1).contains("not permitted"));
    assert_ne!(steps.get("enable-late").0, 0);

    let tampered = steps.rc("apply-tampered", 1);
    assert!(tampered.contains("EKEYREJECTED"), "{tampered}");
    let v2 = steps.ok("apply-v2");
    assert!(v2.contains("version 0.0.2: updated"), "{v2}");
    let v1 = steps.ok("apply-v1-after-v2");
    assert!(
        v1.contains("already-deployed (kernel holds version 0.0.2)")
            && v1.contains("already active"),
        "{v1}"
    );
    let st2 = json(&steps, "status-v2");
    assert_eq!(st2["active_policy"]["version"], "0.0.2");
    assert_eq!(
        st2["active_policy"]["sha256"],
        sha256(&s.data.join("policy-v2.p7b"))
    );
    let denials: u32 = steps.ok("audit-denials").parse().unwrap();
    assert!(denials >= 5, "{denials} IPE denials logged");
    let _ = &s.files_cert;
}

/// `ipe.enforce=0`, the documented way back (docs/lockdown.md): the policy still deploys and
/// activates, `status` says it is not enforcing and `--check` fails, the unsigned copy that the
/// enforcing boot refuses runs, and IPE logs the denial with enforcing=0.
#[test]
fn with_ipe_enforce_0_the_policy_only_logs() {
    let s = setup();
    let vars = db_vars(&s);
    let steps = boot_with(&s, Some(&vars), "permissive", Some("ipe.enforce=0"));
    assert_eq!(steps.ok("enforce-file"), "0");
    let applied = steps.ok("apply");
    assert!(
        applied.contains("policy rpm_verity version 0.0.1: deployed")
            && applied.contains("activated"),
        "{applied}"
    );
    steps.ok("enable-signed");
    let st = json(&steps, "status");
    assert_eq!(st["enforce"], false, "{st}");
    assert_eq!(st["locked_down"], false, "{st}");
    assert_eq!(st["active_policy"]["name"], "rpm_verity");
    let check = steps.rc("status-check", 3);
    assert!(check.contains("IPE is not enforcing"), "{check}");
    assert_eq!(steps.ok("run-signed"), "signed runs");
    assert_eq!(steps.ok("run-unsigned-copy"), "unsigned runs");
    let logged: u32 = steps.ok("audit-permissive").parse().unwrap();
    assert!(logged >= 1, "{logged} permissive IPE denials logged");
}

/// Debian's initramfs-tools applies the policy as dracut does (the steps are one shared file,
/// dist/lib/initramfs.sh): before the root is mounted the certificates are loaded and the
/// policy is active, signed binaries run and the unsigned copy does not; the kernel log says
/// what happened. With rd.rpm-verity.lockdown=0 the certificates are loaded, no policy is, the
/// unsigned copy runs, and the kernel log says lockdown was skipped.
#[test]
fn initramfs_tools_applies_the_policy_before_the_root_is_mounted() {
    let s = setup();
    let vars = db_vars(&s);
    let steps = boot_initramfs_tools(&s, &vars, "initramfs-tools", None);
    let st = json(&steps, "status");
    assert_eq!(st["active_policy"]["name"], "rpm_verity", "{st}");
    assert_eq!(
        st["active_policy"]["sha256"],
        sha256(&s.data.join("policy.p7b"))
    );
    assert_eq!(st["locked_down"], true, "{st}");
    let kmsg = steps.ok("kmsg");
    assert!(
        kmsg.contains("rpm-verity: policy rpm_verity version 0.0.1: deployed")
            && kmsg
                .contains("rpm-verity: lockdown applied from /etc/rpm-verity/lockdown/policy.p7b"),
        "{kmsg}"
    );
    steps.ok("enable-signed");
    assert_eq!(steps.ok("run-signed"), "signed runs");
    let out = steps.rc("run-unsigned-copy", 126);
    assert!(out.contains("Permission denied"), "{out}");

    let steps = boot_initramfs_tools(
        &s,
        &vars,
        "initramfs-tools-skip",
        Some("rd.rpm-verity.lockdown=0"),
    );
    let st = json(&steps, "status");
    assert!(st["active_policy"].is_null(), "{st}");
    assert_eq!(
        st["fs_verity"]["certificates"].as_array().map(Vec::len),
        Some(1),
        "{st}"
    );
    let kmsg = steps.ok("kmsg");
    assert!(
        kmsg.contains("lockdown skipped (rd.rpm-verity.lockdown=0 on the kernel command line)"),
        "{kmsg}"
    );
    // The first boot enabled verity on the same image.
    assert!(steps.rc("enable-signed", 1).contains("File exists"));
    assert_eq!(steps.ok("run-signed"), "signed runs");
    assert_eq!(steps.ok("run-unsigned-copy"), "unsigned runs");
}

#[test]
fn without_enrolment_no_policy_can_be_deployed() {
    let s = setup();
    let steps = boot(&s, None, "pvh");
    let before = json(&steps, "status-before");
    assert_eq!(before["ipe"], true);
    assert_eq!(before["signer_enrolled"], false);
    assert_bad_files_refused(&steps);
    let out = steps.rc("apply-unenrolled", 1);
    assert!(
        out.contains(
            "the policy signer is not enrolled: enrol it as a MOK or in the UEFI db, see \
             docs/lockdown.md"
        ),
        "{out}"
    );
    assert!(steps.ok("state-after-apply").starts_with("policies=[]"));
    // audit --lockdown, measured by the kernel: before `enable`, the signed package's program
    // and script are refused for want of verity; after, only the unsigned package's program
    // and the unowned files remain.
    let refused = |v: &Value, pkg: &str| -> Vec<(String, String)> {
        v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["package"].as_str().unwrap().starts_with(pkg))
            .flat_map(|p| p["files"].as_array().unwrap().clone())
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let before = steps.json("audit-before-enable", 1);
    assert_eq!(before["mode"], "measured");
    let tools = refused(&before, "tools-");
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert!(
        tools
            .iter()
            .all(|(_, r)| r.contains("fs-verity is not enabled")),
        "{tools:?}"
    );
    steps.ok("enable-tools");
    let after = steps.json("audit-after-enable", 1);
    assert_eq!(refused(&after, "tools-"), vec![]);
    assert_eq!(
        refused(&after, "plain-"),
        vec![(
            "/usr/sbin/plain-tool".to_string(),
            "not signed: no fs-verity signature".to_string()
        )]
    );
    let unowned: Vec<&str> = after["unowned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(unowned.contains(&"/usr/libexec/planted"), "{unowned:?}");
    assert!(
        !unowned.iter().any(|p| p.starts_with("/usr/sbin/")),
        "{unowned:?}"
    );

    let unmounted = json(&steps, "status-unmounted");
    assert_eq!(unmounted["securityfs"], false);
    assert!(
        unmounted["problems"][0]
            .as_str()
            .unwrap()
            .contains("securityfs is not mounted"),
        "{unmounted}"
    );
    let out = steps.rc("apply-unmounted", 1);
    assert!(out.contains("the policy signer is not enrolled"), "{out}");
    assert!(steps.ok("lsm-remounted").contains("ipe"));
}
