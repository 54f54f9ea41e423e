//! The Debian package: built with cargo-deb from the Cargo.toml metadata,
//! its contents checked, then installed with apt in a booted systemd and
//! enabled the way an operator would.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::kit::daemon::BIN;
use crate::kit::wait::wait_until;
use crate::packaging::machine::{self, Bind, Machine, Root};
use crate::packaging::{can_run, ok, shipped};

/// Builds the package around the test binary: cargo-deb's `--no-build`
/// takes target/release/tradingbot from a target dir made for it.
fn build_deb(work: &Path) -> std::path::PathBuf {
    let target = work.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(BIN, target.join("release/tradingbot")).unwrap();
    let out = work.join("deb");
    ok(Command::new("cargo")
        .args([
            "deb",
            "--no-build",
            "--no-strip",
            "--fast",
            "--offline",
            "--quiet",
        ])
        .arg("--manifest-path")
        .arg(shipped("Cargo.toml"))
        .arg("-o")
        .arg(&out)
        .env("CARGO_TARGET_DIR", &target));
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .expect("cargo deb made no .deb");
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("tradingbot_{}-1_amd64.deb", env!("CARGO_PKG_VERSION"))
    );
    deb
}

#[test]
fn debian_package_installs_and_enables_the_service() {
    if !can_run(
        "debian_package_installs_and_enables_the_service",
        true,
        &[
            "cargo-deb",
            "dpkg-deb",
            "systemd-nspawn",
            "nsenter",
            "systemd-id128",
        ],
    ) {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("tb-deb-")
        .tempdir()
        .unwrap();
    let deb = build_deb(work.path());

    let control = ok(Command::new("dpkg-deb").arg("--field").arg(&deb));
    assert!(control.contains("Package: tradingbot\n"), "{control}");
    assert!(control.contains("Depends: libc6"), "{control}");
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for (path, mode) in [
        ("./usr/bin/tradingbot", "-rwxr-xr-x"),
        ("./usr/lib/systemd/system/tradingbot.service", "-rw-r--r--"),
        ("./etc/tradingbot/tradingbot.env", "-rw-r--r--"),
    ] {
        assert!(
            listing
                .lines()
                .any(|line| line.starts_with(mode) && line.ends_with(path)),
            "{path} ({mode}) missing from the package:\n{listing}"
        );
    }
    let unpacked = work.path().join("unpacked");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    for (inside, original) in [
        (
            "usr/lib/systemd/system/tradingbot.service",
            "systemd/tradingbot.service",
        ),
        ("etc/tradingbot/tradingbot.env", "systemd/tradingbot.env"),
        (
            "usr/lib/systemd/system/tradingbot-web.service",
            "systemd/tradingbot-web.service",
        ),
        ("etc/tradingbot/web.env", "systemd/tradingbot-web.env"),
    ] {
        assert_eq!(
            std::fs::read(unpacked.join(inside)).unwrap(),
            std::fs::read(shipped(original)).unwrap(),
            "{inside} differs from {original}"
        );
    }
    let control_dir = work.path().join("control");
    ok(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&control_dir));
    let postinst = std::fs::read_to_string(control_dir.join("postinst")).unwrap();
    assert!(postinst.contains("daemon-reload"), "{postinst}");
    assert_eq!(
        std::fs::read_to_string(control_dir.join("conffiles")).unwrap(),
        "/etc/tradingbot/tradingbot.env\n/etc/tradingbot/web.env\n",
        "the env files must be conffiles: an upgrade keeps the operator's edits"
    );

    // apt install into a throwaway overlay of this machine, then enable.
    machine::sweep_leftovers();
    let machine = Machine::boot(
        "deb",
        Root::Overlay,
        &[Bind::read_only(deb.parent().unwrap(), "/srv/deb")],
    );
    // Docker-derived base images (this machine's included) ship a
    // policy-rc.d that forbids maintainer scripts to start or stop services;
    // a real Debian host has none. Removed from the overlay, not the host.
    machine.ok(&["rm", "-f", "/usr/sbin/policy-rc.d"]);
    let package = format!("/srv/deb/{}", deb.file_name().unwrap().to_string_lossy());
    machine.ok(&["apt-get", "install", "-y", &package]);
    let enabled = machine.sh(&["systemctl", "is-enabled", "tradingbot"]);
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "disabled");

    machine.ok(&["systemctl", "enable", "--now", "tradingbot"]);
    assert_eq!(
        machine.property("tradingbot.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        machine.property("tradingbot.service", "FragmentPath"),
        "/lib/systemd/system/tradingbot.service"
    );
    assert!(
        wait_until(Duration::from_secs(15), || machine
            .sh(&[
                "tradingbot",
                "health",
                "--http",
                "--file",
                "/run/tradingbot/healthy"
            ])
            .status
            .success()),
        "the installed service never became healthy:\n{}",
        machine.ok(&["journalctl", "-u", "tradingbot", "--no-pager"])
    );
    assert_eq!(
        machine
            .ok(&["systemctl", "is-enabled", "tradingbot"])
            .trim(),
        "enabled"
    );

    // Removal stops the service cleanly and keeps the operator's settings.
    machine.ok(&["apt-get", "remove", "-y", "tradingbot"]);
    assert_eq!(
        machine.property("tradingbot.service", "ActiveState"),
        "inactive"
    );
    assert_eq!(machine.property("tradingbot.service", "Result"), "success");
    assert!(machine
        .sh(&["test", "-f", "/etc/tradingbot/tradingbot.env"])
        .status
        .success());
    assert!(!machine
        .sh(&["test", "-e", "/usr/bin/tradingbot"])
        .status
        .success());
}
