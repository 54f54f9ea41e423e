//! Rootful podman from a test: images and containers that carry the test
//! label and their owner, are removed on drop (a failed assertion
//! included), and, should the test binary abort or be killed, are removed
//! all the same by a reaper waiting outside it.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};

use super::{ok, owner, owner_alive, run};

/// The label on everything a test creates with podman.
pub const LABEL: &str = "tradingbot-test=1";

/// The label naming the test binary that created it.
const OWNER_LABEL: &str = "tradingbot-test.owner";

pub fn podman() -> Command {
    Command::new("podman")
}

/// The `--label` arguments for something this test binary creates.
pub fn labels() -> [String; 4] {
    [
        "--label".into(),
        LABEL.into(),
        "--label".into(),
        format!("{OWNER_LABEL}={}", owner()),
    ]
}

/// A shell outside the test binary's session, holding the read end of a
/// pipe whose write end only the test binary holds: when the test binary
/// ends, however it ends, the read sees end-of-file and the shell runs its
/// clean-up. On the orderly path [`Reaper::disarm`] lets it go instead.
struct Reaper(Option<ChildStdin>);

impl Reaper {
    fn new(cleanup: &str) -> Reaper {
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                &format!("read -r word; [ \"$word\" = disarm ] || {{ {cleanup}; }}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid(2) is async-signal-safe; in the child it only
        // leaves our session, so a Ctrl-C meant for the test run spares it.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn the clean-up reaper");
        let stdin = child.stdin.take();
        // Reaped by a thread when disarmed; if we die first, by init.
        std::thread::spawn(move || child.wait());
        Reaper(stdin)
    }

    fn disarm(&mut self) {
        if let Some(mut stdin) = self.0.take() {
            let _ = stdin.write_all(b"disarm\n");
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // A pipe closed without "disarm": the reaper cleans up.
        drop(self.0.take());
    }
}

/// An image, removed on drop with the intermediate images of its build
/// (all carry the labels it was built with).
pub struct Image {
    pub tag: String,
    reaper: Reaper,
}

impl Image {
    /// Builds `context` (with the `Dockerfile` at `dockerfile`) as `tag`,
    /// labelled; `args` go to `podman build` as they are.
    pub fn build(
        tag: &str,
        dockerfile: &std::path::Path,
        context: &std::path::Path,
        args: &[&str],
    ) -> Image {
        let image = Image {
            tag: tag.to_owned(),
            reaper: Reaper::new(&format!(
                "podman rmi -f {tag}; podman image prune --all --force --filter label={OWNER_LABEL}={}",
                owner()
            )),
        };
        ok(podman()
            .args(["build", "-q", "--format", "docker"])
            .args(labels())
            .args(args)
            .args(["-t", tag, "-f"])
            .arg(dockerfile)
            .arg(context));
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "-f", &self.tag]).output();
        let filter = format!("label={OWNER_LABEL}={}", owner());
        let _ = podman()
            .args(["image", "prune", "--all", "--force", "--filter", &filter])
            .output();
        self.reaper.disarm();
    }
}

/// A container, removed (killed if need be) on drop.
pub struct Container {
    pub name: String,
    reaper: Reaper,
}

impl Container {
    /// `podman run -d` of `image` as `name`, labelled, with no network
    /// (port 8080 inside meets no other) and `options`.
    pub fn run(name: String, options: &[&str], image: &Image) -> Container {
        let _ = podman().args(["rm", "-f", "-t", "0", &name]).output();
        let container = Container {
            reaper: Reaper::new(&format!("podman rm -f -t 0 {name}")),
            name,
        };
        ok(podman()
            .args(["run", "-d", "--name", &container.name])
            .args(labels())
            .args(["--network", "none"])
            .args(options)
            .arg(&image.tag));
        container
    }

    pub fn inspect(&self, format: &str) -> String {
        ok(podman().args(["inspect", &self.name, "--format", format]))
            .trim()
            .to_owned()
    }

    pub fn health(&self) -> String {
        self.inspect("{{.State.Health.Status}}")
    }

    /// Runs the image's HEALTHCHECK once, as the engine's timer would
    /// (podman's timers need systemd); true when it passed.
    pub fn check(&self) -> bool {
        run(podman().args(["healthcheck", "run", &self.name]))
            .status
            .success()
    }

    pub fn logs(&self) -> String {
        let output = run(podman().args(["logs", &self.name]));
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
        self.reaper.disarm();
    }
}

/// Removes the containers and images of test binaries that are gone (an
/// earlier run killed before its reapers could act, say); those of a run
/// still going are left alone. Says what it removed.
pub fn sweep_leftovers() {
    let kinds: [(&str, &[&str], &[&str]); 2] = [
        ("container", &["ps", "-a"], &["rm", "-f", "-t", "0"]),
        ("image", &["images", "-a"], &["rmi", "-f"]),
    ];
    for (kind, list, remove) in kinds {
        let listing = run(podman()
            .args(list)
            .args(["--filter", &format!("label={LABEL}")])
            .args(["--format", "{{.ID}}"]));
        for id in String::from_utf8_lossy(&listing.stdout).split_whitespace() {
            let owner = run(podman().args([
                kind,
                "inspect",
                id,
                "--format",
                &format!("{{{{index .Config.Labels \"{OWNER_LABEL}\"}}}}"),
            ]));
            let owner = String::from_utf8_lossy(&owner.stdout).trim().to_owned();
            if !owner_alive(&owner) {
                eprintln!("removing leftover test {kind} {id} (owner {owner:?} is gone)");
                let _ = podman().args(remove).arg(id).output();
            }
        }
    }
}
