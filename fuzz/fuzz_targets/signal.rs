//! `signal::parse` on any bytes: no panic, the same answer as the general
//! serde_json path (so the fast scanner never accepts what it should not,
//! nor reads a field differently), and what it accepts is a signal the
//! engine can trust.

use tradingbot::bot::signal::{parse, parse_general, MAX_LINE_BYTES};

fn main() {
    afl::fuzz!(|line: &[u8]| {
        let parsed = parse(line);
        assert_eq!(parsed, parse_general(line));
        match parsed {
            Ok(signal) => {
                assert!(line.len() <= MAX_LINE_BYTES);
                assert!(signal.qty.is_finite() && signal.qty > 0.0);
                assert!(signal
                    .price
                    .is_none_or(|price| price.is_finite() && price > 0.0));
                assert!(signal.ts_ms >= 0);
                for name in [
                    Some(&signal.id),
                    Some(&signal.symbol),
                    signal.source.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    assert!(!name.is_empty() && name.chars().count() <= 128);
                    assert!(!name.chars().any(char::is_control));
                }
            }
            Err(reject) => assert!(!reject.detail.is_empty() && reject.detail.len() < 512),
        }
    });
}
