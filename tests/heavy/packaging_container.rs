//! The shipped Dockerfile's runtime stage, built offline from the test
//! binary with rootful podman, and run as users run it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kit::daemon::BIN;
use crate::kit::process::children;
use crate::kit::wait::wait_until;
use crate::packaging::podman::{self, podman, Container, Image};
use crate::packaging::{can_run, comm, ok, shipped};

/// Debian's busybox-static: being static, it runs in the scratch image.
const BUSYBOX: &str = "/bin/busybox";

/// Builds the shipped Dockerfile's runtime stage from the test binary:
/// `BINARY_FROM=prebuilt` with a rootfs laid out by the shipped
/// docker/collect-rootfs.sh, so no base image is pulled.
fn build_image(context: &Path, tag: &str) -> Image {
    ok(Command::new("sh")
        .arg(shipped("docker/collect-rootfs.sh"))
        .arg(BIN)
        .arg(context.join("rootfs")));
    let dockerfile = std::fs::read_to_string(shipped("docker/Dockerfile")).unwrap();
    // HEALTHCHECK --start-interval (Docker Engine 25) is unknown to the
    // podman 4.3 of Debian 12, which refuses the whole file; it is the only
    // change made to the shipped Dockerfile.
    assert!(dockerfile.contains(" --start-interval=1s"));
    let local = context.join("Dockerfile");
    std::fs::write(&local, dockerfile.replace(" --start-interval=1s", "")).unwrap();
    Image::build(
        tag,
        &local,
        context,
        &["--build-arg", "BINARY_FROM=prebuilt"],
    )
}

#[test]
fn container_image_reports_health_stops_cleanly_and_restarts() {
    if !can_run(
        "container_image_reports_health_stops_cleanly_and_restarts",
        true,
        &["podman", "runc", "busybox"],
    ) {
        return;
    }
    podman::sweep_leftovers();
    let context = tempfile::Builder::new()
        .prefix("tb-image-")
        .tempdir()
        .unwrap();
    let id = std::process::id();
    let image = build_image(context.path(), &format!("localhost/tradingbot-test:{id}"));

    let config: serde_json::Value = serde_json::from_str(&ok(podman().args([
        "image",
        "inspect",
        &image.tag,
        "--format",
        "{\"config\": {{json .Config}}, \"health\": {{json .HealthCheck}}}",
    ])))
    .unwrap();
    assert_eq!(config["config"]["User"], "10001:10001");
    assert_eq!(config["config"]["StopSignal"], "SIGTERM");
    assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
    assert!(config["config"]["Volumes"]["/var/lib/tradingbot"].is_object());
    assert_eq!(
        config["health"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/tradingbot", "health"])
    );

    health_goes_starting_healthy_unhealthy(&image, &config["health"], id);
    stop_is_clean_within_the_grace_period(&image, id);
    stall_exit_restarts_under_a_restart_policy(&image, id);
    orphans_are_reaped_when_the_daemon_is_pid_1(&image, context.path(), id);
}

fn health_goes_starting_healthy_unhealthy(image: &Image, shipped: &serde_json::Value, id: u32) {
    // The start period is cut to test scale: podman 4.3 ignores failures for
    // the whole start period, even after a success. It takes a changed
    // start period only with --health-cmd, so the image's own check and
    // timings are passed back with it.
    let command = serde_json::to_string(&shipped["Test"].as_array().unwrap()[1..]).unwrap();
    let seconds = |key: &str| format!("{}s", shipped[key].as_u64().unwrap() / 1_000_000_000);
    let (interval, timeout) = (seconds("Interval"), seconds("Timeout"));
    let retries = shipped["Retries"].to_string();
    // The first iteration is held 3 s (starting); ten more, then a stall.
    let bot = Container::run(
        format!("tb-{id}-health"),
        &[
            "-e",
            "HEARTBEAT_INTERVAL=200ms",
            "-e",
            "STALL_TIMEOUT=1s",
            "-e",
            "FAILPOINTS=bot::iteration=1*sleep(3000)->10*off->sleep(60000)",
            "--health-cmd",
            &command,
            "--health-interval",
            &interval,
            "--health-timeout",
            &timeout,
            "--health-retries",
            &retries,
            "--health-start-period=5s",
        ],
        image,
    );
    assert!(!bot.check(), "healthy before the first loop iteration");
    assert_eq!(bot.health(), "starting");
    assert!(
        wait_until(Duration::from_secs(15), || bot.check()),
        "never healthy:\n{}",
        bot.logs()
    );
    assert_eq!(bot.health(), "healthy");
    assert!(
        wait_until(Duration::from_secs(30), || {
            bot.check();
            bot.health() == "unhealthy"
        }),
        "a stalled bot never became unhealthy:\n{}",
        bot.logs()
    );
    assert!(bot.logs().contains("bot loop stalled"));
}

fn stop_is_clean_within_the_grace_period(image: &Image, id: u32) {
    let bot = Container::run(format!("tb-{id}-stop"), &[], image);
    assert!(wait_until(Duration::from_secs(15), || bot.check()));
    let grace = 30;
    let started = Instant::now();
    ok(podman().args(["stop", "-t", &grace.to_string(), &bot.name]));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(grace), "stop took {took:?}");
    assert_eq!(bot.inspect("{{.State.ExitCode}}"), "0");
    let logs = bot.logs();
    assert!(
        logs.lines()
            .last()
            .is_some_and(|line| line.contains("stopped cleanly")),
        "the log does not end with the clean stop:\n{logs}"
    );
}

fn stall_exit_restarts_under_a_restart_policy(image: &Image, id: u32) {
    let bot = Container::run(
        format!("tb-{id}-restart"),
        &[
            "--restart=on-failure",
            "-e",
            "HEARTBEAT_INTERVAL=200ms",
            "-e",
            "STALL_TIMEOUT=1s",
            "-e",
            "STALL_EXIT_AFTER=2s",
            "-e",
            "FAILPOINTS=bot::iteration=5*off->sleep(60000)",
        ],
        image,
    );
    assert!(
        wait_until(Duration::from_secs(30), || bot
            .inspect("{{.RestartCount}}")
            .parse::<u32>()
            .is_ok_and(|count| count >= 1)),
        "no restart after the stall:\n{}",
        bot.logs()
    );
    assert!(
        bot.logs().contains("past STALL_EXIT_AFTER"),
        "{}",
        bot.logs()
    );
}

/// A process orphaned inside the container is reparented to PID 1, the
/// daemon: it must be reaped when it exits, not left a zombie.
fn orphans_are_reaped_when_the_daemon_is_pid_1(image: &Image, context: &Path, id: u32) {
    // The image has no shell: add busybox on top, only to make orphans.
    let dir = context.join("orphans");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(BUSYBOX, dir.join("busybox")).unwrap();
    let dockerfile = dir.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        format!("FROM {}\nCOPY busybox /busybox\n", image.tag),
    )
    .unwrap();
    let with_shell = Image::build(
        &format!("localhost/tradingbot-test-shell:{id}"),
        &dockerfile,
        &dir,
        &[],
    );
    let bot = Container::run(format!("tb-{id}-reap"), &[], &with_shell);
    assert!(wait_until(Duration::from_secs(15), || bot.check()));
    let init: i32 = bot.inspect("{{.State.Pid}}").parse().unwrap();

    // The shell exits at once; its background sleep is orphaned.
    ok(podman().args([
        "exec",
        &bot.name,
        "/busybox",
        "sh",
        "-c",
        "/busybox sleep 1 &",
    ]));
    let mut orphan = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            orphan = children(init)
                .into_iter()
                .find(|pid| comm(*pid) == "busybox");
            orphan.is_some()
        }),
        "the orphan never reached PID 1"
    );
    let orphan = orphan.unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || !Path::new(&format!(
            "/proc/{orphan}"
        ))
        .exists()),
        "orphan {orphan} was not reaped (state {:?})",
        std::fs::read_to_string(format!("/proc/{orphan}/stat")).unwrap_or_default()
    );
    assert_eq!(bot.inspect("{{.State.Status}}"), "running");
    assert!(bot.check());
}
