//! Rootful podman from a test: images and containers removed on drop (a
//! failed assertion included).

use std::process::Command;

use super::{ok, run};

pub fn podman() -> Command {
    Command::new("podman")
}

fn label() -> String {
    format!("tradingbot-test={}", std::process::id())
}

/// An image, removed on drop with the intermediate images of its build
/// (all carry the label it was built with).
pub struct Image {
    pub tag: String,
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
        };
        ok(podman()
            .args(["build", "-q", "--format", "docker", "--label", &label()])
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
        let filter = format!("label={}", label());
        let _ = podman()
            .args(["image", "prune", "--all", "--force", "--filter", &filter])
            .output();
    }
}

/// A container, removed (killed if need be) on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `podman run -d` of `image` as `name`, with no network (port 8080
    /// inside meets no other) and `options`.
    pub fn run(name: String, options: &[&str], image: &Image) -> Container {
        let _ = podman().args(["rm", "-f", "-t", "0", &name]).output();
        let container = Container { name };
        ok(podman()
            .args(["run", "-d", "--name", &container.name])
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
    }
}
