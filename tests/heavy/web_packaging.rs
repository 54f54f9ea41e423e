//! The dashboard's packaging under the real tools: its systemd unit scored
//! by systemd-analyze and run under a booted systemd (ready on its port,
//! read-only everywhere), and the Prometheus rules and the Grafana
//! dashboard's queries through promtool.

use std::process::Command;

use serde_json::Value;

use crate::packaging::machine::{unit_binds, Bind, Machine, Root};
use crate::packaging::{can_run, exposure, ok, shipped};

fn read(relative: &str) -> String {
    std::fs::read_to_string(shipped(relative)).unwrap()
}

#[test]
fn web_unit_scores_ok_in_systemd_analyze_security() {
    if !can_run(
        "web_unit_scores_ok_in_systemd_analyze_security",
        false,
        &["systemd-analyze"],
    ) {
        return;
    }
    let (score, output) = exposure("tradingbot-web.service");
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{output}");
}

/// Boots a systemd with the shipped unit and only the binary's path
/// overridden, and its two credentials in place.
#[test]
fn systemd_runs_the_web_unit_ready_on_its_port_and_read_only() {
    if !can_run(
        "systemd_runs_the_web_unit_ready_on_its_port_and_read_only",
        true,
        &["systemd-nspawn", "nsenter", "systemd-id128"],
    ) {
        return;
    }
    let files = tempfile::Builder::new()
        .prefix("tb-web-unit-")
        .tempdir()
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let drop_in = write(
        "test.conf",
        "[Service]\nExecStart=\nExecStart=/opt/tradingbot/tradingbot web\n",
    );
    let unit = "tradingbot-web.service";
    let mut binds = unit_binds(unit, drop_in);
    binds.extend([
        Bind::read_only(
            write("web-token", "unit-t0ken\n"),
            "/etc/tradingbot/web-token",
        ),
        Bind::read_only(
            write("web-bot-tokens", "tradingbot=read-t0ken\n"),
            "/etc/tradingbot/web-bot-tokens",
        ),
    ]);
    let machine = Machine::boot("web", Root::Volatile, &binds);
    machine.assert_verifies(unit);
    // Type=notify: start returns once READY=1 came, after the bind.
    machine.ok(&["systemctl", "start", unit]);
    assert_eq!(machine.property(unit, "ActiveState"), "active");
    assert_eq!(
        machine.property(unit, "StatusText"),
        "serving 1 bots on 0.0.0.0:8081"
    );
    machine.ok(&[
        "/opt/tradingbot/tradingbot",
        "health",
        "--addr",
        "127.0.0.1:8081",
    ]);
    // No bot answers in there: the dashboard says so and keeps serving.
    let journal = machine.wait_journal(unit, "bot unreachable");
    assert!(
        journal.to_string().contains("connection refused"),
        "{journal}"
    );

    // Writes nowhere: in its mount namespace, even root gets EROFS (or
    // finds nothing there) wherever a file could be left behind.
    let pid = machine.property(unit, "MainPID");
    for dir in [
        "/tmp",
        "/var/tmp",
        "/run",
        "/run/lock",
        "/dev/shm",
        "/etc",
        "/var/lib",
        "/var/log",
        "/usr/local",
        "/opt",
        "/srv",
        "/home",
        "/root",
    ] {
        let file = format!("{dir}/tb-web-probe");
        let touched = machine.sh(&["nsenter", "-t", &pid, "-m", "--", "touch", &file]);
        assert!(
            !touched.status.success(),
            "{dir} is writable for the dashboard"
        );
    }
    machine.ok(&["systemctl", "stop", unit]);
    assert_eq!(machine.property(unit, "ActiveState"), "inactive");
    assert_eq!(machine.property(unit, "Result"), "success");
}

#[test]
fn prometheus_rules_pass_promtool_check_and_their_tests() {
    if !can_run(
        "prometheus_rules_pass_promtool_check_and_their_tests",
        false,
        &["promtool"],
    ) {
        return;
    }
    let dir = shipped("packaging/prometheus");
    let checked = ok(Command::new("promtool")
        .args(["check", "rules", "tradingbot.rules.yml"])
        .current_dir(&dir));
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    ok(Command::new("promtool")
        .args(["test", "rules", "tradingbot.rules.test.yml"])
        .current_dir(&dir));
    // One test per alert.
    let rules = read("packaging/prometheus/tradingbot.rules.yml");
    let tests = read("packaging/prometheus/tradingbot.rules.test.yml");
    for alert in rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "no test of {alert}"
        );
    }
}

#[test]
fn grafana_queries_parse_in_promtool() {
    if !can_run("grafana_queries_parse_in_promtool", false, &["promtool"]) {
        return;
    }
    // Each query as a recording rule, Grafana's variables filled in.
    let dashboard: Value =
        serde_json::from_str(&read("packaging/grafana/tradingbot.json")).unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$job", "tradingbot");
            file.push_str(&format!(
                "      - record: dashboard:query{count}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            ));
            count += 1;
        }
    }
    assert!(count >= 10, "{file}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.rules.yml"), file).unwrap();
    ok(Command::new("promtool")
        .args(["check", "rules", "dashboard.rules.yml"])
        .current_dir(dir.path()));
}
