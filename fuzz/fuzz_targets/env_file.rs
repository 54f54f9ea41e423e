//! The env file reader (SIGHUP): any text, any key; a value found is one
//! line's worth, trimmed.

use tradingbot::os_signals::env_value;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (key, text) = text.split_once('\n').unwrap_or((text, ""));
        if let Some(value) = env_value(text, key) {
            assert!(!value.contains('\n'));
            assert_eq!(
                value,
                value.trim_matches(|quote| quote == '"' || quote == '\'')
            );
        }
    });
}
