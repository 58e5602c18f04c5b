//! VM test: the run-time integration on Debian's fs-verity kernel (qemu TCG, tests/vm/run.sh).
//!
//! Three boots of one ext4 `-O verity` image, in one test so they run in order:
//! 1. `keyring load/list/require-signatures` and `status` from a fresh keyring on; the dracut
//!    hook script on an emptied keyring; the file trigger of `dist/rpm-verity.spec` (built with
//!    rpmbuild, installed into a root on the image) firing when the real rpm installs a
//!    package signed by `rpm-verity sign`, plugin off; and preparing the next boots: the root's
//!    `/sbin/init` (a busybox script) and `/bin/busybox` verity-enabled with signatures.
//! 2. The shipped initramfs-tools `init-premount` script as run.sh's `--pre`, then
//!    `switch_root` into that root with `require_signatures` set from the config file: init runs.
//! 3. The same without the hook: the kernel refuses to execute init (ENOKEY) and the boot dies.
//!
//! Needs qemu, busybox, openssl, fsverity, keyctl, e2fsprogs, rpm/rpmbuild and setpriv on the
//! host; nothing is mocked.
use verity_test_support::rpmbuild as support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use verity_test_support::vm::{
    args, boot as boot_ok, der, fsverity_digest, fsverity_sign, make_cert, mkfs_ext4, pattern,
    repo_root, run, stdout, vm_output,
};

/// Where both initramfs generators put the boot steps the hooks share (dist/lib/initramfs.sh).
const INITRAMFS_LIB: &str = "/usr/lib/rpm-verity/initramfs.sh";

fn bin() -> &'static str {
    verity_test_support::bin!()
}

/// The description the kernel gives the cert, computed independently of our code: "O: CN:
/// <subjectKeyIdentifier hex>".
fn expected_description(cert: &Path, name: &str) -> String {
    let out = stdout(
        Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectKeyIdentifier", "-in"])
            .arg(cert),
    );
    let skid = out
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    format!("Throwaway: rpm-verity boot {name}: {skid}")
}

/// Copy `exe`'s shared libraries (as `ldd` lists them) into `root` at the same paths.
fn copy_libs(exe: &Path, root: &Path) {
    let out = stdout(Command::new("ldd").arg(exe));
    for word in out.split_whitespace() {
        if !word.starts_with('/') || !Path::new(word).is_file() {
            continue;
        }
        let dst = root.join(word.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        run(Command::new("cp").arg("-L").arg(word).arg(&dst));
    }
}

fn keys_of(v: &Value) -> Vec<String> {
    v["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["description"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn keyring_status_trigger_and_initramfs_hook_on_a_real_kernel() {
    let repo = repo_root();
    let td = tempfile::tempdir().unwrap();
    let t = td.path();

    // --- certificates and configuration ---------------------------------------------------------
    let (key1, cert1) = make_cert(t, "cert1", "boot");
    let (_key2, cert2) = make_cert(t, "cert2", "boot");
    let desc1 = expected_description(&cert1, "cert1");
    let desc2 = expected_description(&cert2, "cert2");
    let certs = t.join("certs");
    fs::create_dir(&certs).unwrap();
    let bundle = [fs::read(&cert1).unwrap(), fs::read(&cert2).unwrap()].concat();
    fs::write(certs.join("bundle.pem"), bundle).unwrap();
    der(&cert1, &certs.join("cert1.der"));
    fs::write(certs.join("README"), "certificates for the test\n").unwrap();
    // /etc/rpm-verity as the boot integration sees it: one cert, require_signatures on.
    let etc = t.join("etc-rpm-verity");
    fs::create_dir_all(etc.join("certs")).unwrap();
    fs::copy(&cert1, etc.join("certs/cert1.pem")).unwrap();
    fs::write(etc.join("require-signatures"), "on\n").unwrap();

    // --- the binary under test and its package --------------------------------------------------
    let stripped = t.join("rpm-verity");
    verity_test_support::strip_debug(Path::new(bin()), &stripped);
    let rv_rpm = support::build_rpm_verity_package(t, &stripped);

    // --- a package signed by `rpm-verity sign` ----------------------------------------------------
    let stage = t.join("stage");
    for d in ["usr/bin", "usr/share/vt", "etc"] {
        fs::create_dir_all(stage.join(d)).unwrap();
    }
    fs::write(stage.join("usr/bin/vt-tool"), pattern(30_000, 1)).unwrap();
    fs::set_permissions(
        stage.join("usr/bin/vt-tool"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(stage.join("usr/share/vt/data.bin"), pattern(200_000, 2)).unwrap();
    fs::write(stage.join("usr/share/vt/small.txt"), "hello\n").unwrap();
    fs::write(stage.join("etc/vt.conf"), "key=value\n").unwrap();
    let vt = support::build_rpm_custom(
        t,
        "vt",
        "w19.zstdio",
        &format!("cp -a {}/. %{{buildroot}}/\n", stage.display()),
        "/usr/bin/vt-tool\n%dir /usr/share/vt\n/usr/share/vt/data.bin\n\
         /usr/share/vt/small.txt\n%config(noreplace) /etc/vt.conf\n",
    );
    run(Command::new(bin())
        .arg("sign")
        .arg("--key")
        .arg(&key1)
        .arg("--cert")
        .arg(&cert1)
        .arg(&vt));
    let vt_digests: Vec<(&str, String)> = [
        "usr/bin/vt-tool",
        "usr/share/vt/data.bin",
        "usr/share/vt/small.txt",
    ]
    .into_iter()
    .map(|f| (f, fsverity_digest(&stage.join(f))))
    .collect();

    // --- the root image -----------------------------------------------------------------------
    let root = t.join("root");
    for d in ["bin", "sbin", "proc", "sys", "dev"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
    fs::copy(
        repo.join("tests/vm/guests/boot-init.sh"),
        root.join("sbin/init"),
    )
    .unwrap();
    fs::set_permissions(root.join("sbin/init"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("unsigned.bin"), pattern(5000, 3)).unwrap();
    let data = t.join("data");
    fs::create_dir(&data).unwrap();
    fsverity_sign(
        &root.join("sbin/init"),
        &data.join("init.sig"),
        &key1,
        &cert1,
    );
    fsverity_sign(
        &root.join("bin/busybox"),
        &data.join("busybox.sig"),
        &key1,
        &cert1,
    );
    let init_digest = fsverity_digest(&root.join("sbin/init"));

    // A root for rpm's chrooted scriptlets: /bin/sh and rpm-verity's libraries, an rpmdb with
    // rpm-verity's own package (and so its file trigger) installed by the real rpm.
    let rr = root.join("rpmroot");
    for d in ["bin", "etc", "var/tmp", "tmp", "proc", "dev"] {
        fs::create_dir_all(rr.join(d)).unwrap();
    }
    fs::copy("/bin/bash", rr.join("bin/sh")).unwrap();
    copy_libs(Path::new("/bin/bash"), &rr);
    copy_libs(&stripped, &rr);
    fs::write(rr.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(rr.join("etc/group"), "root:x:0:\n").unwrap();
    let rpm_root = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = Command::new("rpm");
        c.arg("--root").arg(&rr).args(["--dbpath", "/var/lib/rpm"]);
        for a in extra {
            c.arg(a);
        }
        run(&mut c);
    };
    rpm_root(&[&"--initdb"]);
    rpm_root(&[
        &"-i",
        &"--nodeps",
        &"--noscripts",
        &"--define",
        &"__transaction_fsverity %{nil}",
        &rv_rpm,
    ]);
    assert!(rr.join("usr/bin/rpm-verity").is_file());

    let img = t.join("root.img");
    let img2 = t.join("noverity.img");
    mkfs_ext4(&root, &img, true, "192M");
    let empty = t.join("empty");
    fs::create_dir(&empty).unwrap();
    mkfs_ext4(&empty, &img2, false, "8M");

    let rv_bin = format!("{}:/usr/bin/rpm-verity", stripped.display());
    let file = |src: &Path, dst: &str| format!("{}:{dst}", src.display());

    // --- boot 1 -------------------------------------------------------------------------------
    let g = boot_ok(&args(&[
        &"--bin",
        &rv_bin,
        &"--bin",
        &"/usr/bin/setpriv:/usr/bin/setpriv",
        &"--bin",
        &"/usr/bin/rpm:/usr/bin/rpm",
        &"--file",
        &"/usr/lib/rpm:/usr/lib/rpm",
        &"--file",
        &file(&certs, "/data/certs"),
        &"--file",
        &file(&etc, "/etc/rpm-verity"),
        &"--file",
        &data.join("init.sig"),
        &"--file",
        &data.join("busybox.sig"),
        &"--file",
        &file(&vt, "/data/vt.rpm"),
        &"--file",
        &file(
            &repo.join("dist/dracut/90rpm-verity/rpm-verity-load.sh"),
            "/data/rpm-verity-load.sh",
        ),
        &"--file",
        &file(&repo.join("dist/lib/initramfs.sh"), INITRAMFS_LIB),
        &"--disk",
        &img,
        &"--disk",
        &img2,
        &repo.join("tests/vm/guests/boot.sh"),
    ]));

    // status, fresh keyring: the configured cert is visibly missing.
    let st = g.json_line("status-fresh");
    assert_eq!(st["kernel"]["builtin_signatures"], true, "{st}");
    assert_eq!(st["kernel"]["fs_verity"], true, "{st}");
    assert_eq!(st["kernel"]["keyring_present"], true, "{st}");
    assert_eq!(st["kernel"]["require_signatures"], false, "{st}");
    assert_eq!(st["kernel"]["ext4_verity"], true, "{st}");
    assert_eq!(st["keyring"]["keys"].as_array().unwrap().len(), 0, "{st}");
    let c = &st["certs"]["certs"][0];
    assert_eq!(c["path"], "/etc/rpm-verity/certs/cert1.pem", "{st}");
    assert_eq!(c["loaded"], false, "{st}");
    assert_eq!(c["description"], desc1.as_str(), "{st}");
    assert_eq!(st["path"]["fs_type"], "ext4", "{st}");
    assert_eq!(st["path"]["device"], "/dev/vda", "{st}");
    assert_eq!(st["path"]["verity"], "supported", "{st}");
    assert_eq!(st["path"]["ext4"]["verity_feature"], true, "{st}");
    assert_eq!(st["path"]["ext4"]["block_size"], 4096, "{st}");
    assert!(
        st["problems"][0]
            .as_str()
            .unwrap()
            .contains("is not in the .fs-verity keyring"),
        "{st}"
    );
    let text = g.ok("status-fresh-text");
    assert!(
        text.contains("cert1.pem: CN=rpm-verity boot cert1"),
        "{text}"
    );
    assert!(text.contains("NOT LOADED"), "{text}");
    let tmp = g.json_line("status-tmpfs");
    assert_eq!(tmp["path"]["fs_type"], "tmpfs", "{tmp}");
    assert_eq!(tmp["path"]["verity"], "unsupported", "{tmp}");
    let nov = g.json_line("status-noverity");
    assert_eq!(nov["path"]["verity"], "feature-off", "{nov}");
    assert_eq!(nov["path"]["ext4"]["verity_feature"], false, "{nov}");
    assert!(
        g.ok("status-noverity-text")
            .contains("`tune2fs -O verity /dev/vdb`"),
        "{}",
        g.ok("status-noverity-text")
    );

    // keyring load / list / idempotence.
    assert_eq!(g.ok("list-empty"), "0 key(s) in .fs-verity");
    let load = g.ok("load-dir");
    assert!(
        load.contains(&format!(
            "loaded          /data/certs/bundle.pem: {desc1} (key "
        )) && load.contains(&format!(
            "loaded          /data/certs/bundle.pem: {desc2} (key "
        )) && load.contains(&format!(
            "already loaded  /data/certs/cert1.der: {desc1} (key "
        )) && load.contains("skipping /data/certs/README: not a certificate file")
            && load.ends_with("2 loaded, 1 already in the keyring, 1 skipped, 0 failed"),
        "{load}"
    );
    assert!(
        g.ok("load-again")
            .ends_with("0 loaded, 3 already in the keyring, 1 skipped, 0 failed"),
        "{}",
        g.ok("load-again")
    );
    let mut keys = keys_of(&g.json_line("list-json"));
    keys.sort();
    let mut want = vec![desc1.clone(), desc2.clone()];
    want.sort();
    assert_eq!(keys, want, "exactly the two certs, each once");
    assert!(g.ok("list-text").ends_with("2 key(s) in .fs-verity"));
    g.fails("load-explicit-notcert", 1, "not a certificate file");
    let again = g.json_line("load-again-json");
    assert_eq!(again["entries"][0]["status"], "already-loaded", "{again}");
    assert_eq!(again["loaded"], 0, "{again}");
    g.fails("load-missing-dir", 1, "certificate directory /nonexistent");

    // require-signatures.
    assert_eq!(g.ok("reqsig-get0"), "0");
    assert!(g
        .ok("reqsig-on")
        .starts_with("fs.verity.require_signatures = 1 (was 0)"));
    assert_eq!(g.ok("reqsig-get1"), "1");
    assert!(g
        .ok("reqsig-off")
        .starts_with("fs.verity.require_signatures = 0 (was 1)"));
    assert_eq!(
        g.ok("reqsig-missing-file"),
        "/nonexistent does not exist: fs.verity.require_signatures left at 0"
    );
    g.fails("reqsig-bad-file", 1, "expected on or off");
    g.fails("nonroot-load", 1, "run this as root");
    g.fails("nonroot-reqsig", 1, "run this as root");
    let st = g.json_line("status-loaded");
    assert_eq!(st["certs"]["certs"][0]["loaded"], true, "{st}");
    assert_eq!(st["problems"].as_array().unwrap().len(), 0, "{st}");

    // The root for the next boots.
    g.ok("enable-init");
    g.ok("enable-busybox");
    g.ok("enable-unsigned");
    assert_eq!(
        g.ok("measure-init"),
        format!("{init_digest} /mnt/sbin/init")
    );
    let si = g.json_line("status-init");
    assert_eq!(si["path"]["file_verity"], true, "{si}");
    assert_eq!(si["path"]["file_digest"], init_digest.as_str(), "{si}");

    // The file trigger: rpm installed the signed package, rpm-verity enabled its files.
    let inst = g.ok("rpm-install");
    assert!(!inst.contains("scriptlet failed"), "{inst}");
    assert!(g.ok("rpm-query").contains("vt-1.0-1.x86_64"));
    for (f, digest) in &vt_digests {
        assert_eq!(
            g.ok(&format!("measure-/{f}")),
            format!("{digest} /mnt/rpmroot/{f}"),
            "{f} must be verity-enabled by the trigger"
        );
    }
    // %config files are left alone (they are meant to be edited).
    let (rc, out) = g.get("measure-/etc/vt.conf");
    assert_ne!(*rc, 0, "etc/vt.conf must not be verity: {out}");

    // The dracut hook on an emptied keyring: loads /etc/rpm-verity/certs, sets the sysctl.
    g.ok("keyctl-clear");
    assert_eq!(g.ok("list-cleared"), "0 key(s) in .fs-verity");
    assert_eq!(g.ok("reqsig-before-hook"), "0");
    let hook = g.ok("dracut-hook");
    assert!(hook.contains("1 loaded"), "{hook}");
    assert_eq!(
        keys_of(&g.json_line("list-after-hook")),
        vec![desc1.clone()]
    );
    assert_eq!(g.ok("reqsig-after-hook"), "1");

    // --- boot 2: the initramfs-tools hook loads the cert before switch_root ---------------------
    let g = boot_ok(&args(&[
        &"--bin",
        &rv_bin,
        &"--file",
        &file(&etc, "/etc/rpm-verity"),
        &"--file",
        &file(&repo.join("dist/lib/initramfs.sh"), INITRAMFS_LIB),
        &"--pre",
        &repo.join("dist/initramfs-tools/scripts/init-premount/rpm-verity"),
        &"--disk",
        &img,
        &"--switch-root",
        &"/sbin/init",
    ]));
    assert!(
        g.out.contains(&format!(
            "loaded          /etc/rpm-verity/certs/cert1.pem: {desc1}"
        )),
        "{}",
        g.out
    );
    assert_eq!(g.ok("init-pid"), "pid 1");
    assert_eq!(g.ok("reqsig"), "1");
    assert_eq!(g.ok("keys"), "1");
    assert_eq!(
        g.ok("read-signed"),
        fs::metadata(root.join("sbin/init"))
            .unwrap()
            .len()
            .to_string()
    );
    // require_signatures=1: a verity file without signature cannot be opened.
    g.fails("read-unsigned", 1, "Operation not permitted");

    // --- boot 3: no hook, so init cannot be executed --------------------------------------------
    let console = t.join("console.log");
    let out = vm_output(
        "run.sh",
        args(&[
            &"--disk",
            &img,
            &"--console",
            &console,
            &"--switch-root",
            &"/sbin/init",
        ]),
    );
    assert_eq!(
        out.status.code(),
        Some(125),
        "the guest must die without reporting: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = fs::read_to_string(&console).unwrap();
    assert!(
        log.contains("can't execute '/sbin/init': Required key not available"),
        "console:\n{log}"
    );
}
