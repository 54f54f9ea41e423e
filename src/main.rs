use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Fail points exist only in test builds; the scenario must outlive `run`.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let exit = tradingbot::run(std::env::args_os()).unwrap_or_else(|error| {
        // Not eprintln!: a closed stderr must not turn the error's exit
        // code into a panic's abort.
        let _ = writeln!(std::io::stderr(), "tradingbot: {error}");
        error.exit()
    });
    ExitCode::from(exit.code())
}
