use std::process::ExitCode;

fn main() -> ExitCode {
    // Fail points exist only in test builds; the scenario must outlive `run`.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    match tradingbot::daemon::main(std::env::args_os()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tradingbot: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
