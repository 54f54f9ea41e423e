use std::process::ExitCode;

fn main() -> ExitCode {
    // Fail points exist only in test builds; the scenario must outlive `run`.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let exit = tradingbot::run(std::env::args_os()).unwrap_or_else(|error| {
        eprintln!("tradingbot: {error}");
        error.exit()
    });
    ExitCode::from(exit.code())
}
