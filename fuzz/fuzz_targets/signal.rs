//! `signal::parse` on any bytes: no panic, the same answer as the general
//! serde_json path (so the fast scanner never accepts what it should not,
//! nor reads a field differently, a number's digits included), and what
//! it accepts is a signal or a price update the engine can trust. Both
//! parses arrive at one fixed time, so a signal with an id and no `ts`
//! reads alike in both; parsed again at another time, only such a signal
//! changes, and only its `ts`.

use tradingbot::bot::signal::{
    parse_at, parse_general, Arrival, Ids, Item, Signal, MAX_LINE_BYTES,
};

/// When a line arrives: 2024-05-01T12:00:00Z, or a second later.
const ARRIVAL_MS: i64 = 1_714_564_800_000;
const LATER_MS: i64 = ARRIVAL_MS + 1_000;

fn main() {
    afl::fuzz!(|line: &[u8]| {
        let parsed = parse_at(line, Ids::Required, Arrival::At(ARRIVAL_MS));
        assert_eq!(parsed, parse_general(line, Arrival::At(ARRIVAL_MS)));
        match (&parsed, parse_at(line, Ids::Required, Arrival::At(LATER_MS))) {
            (Ok(Item::Signal(signal)), Ok(Item::Signal(later))) if *signal != later => {
                assert_eq!((signal.ts_ms, later.ts_ms), (ARRIVAL_MS, LATER_MS));
                assert_eq!(*signal, Signal { ts_ms: ARRIVAL_MS, ..later });
            }
            (parsed, later) => assert_eq!(*parsed, later),
        }
        match parsed {
            Ok(Item::Price(update)) => {
                assert!(line.len() <= MAX_LINE_BYTES);
                assert!(update.price.is_positive());
                assert!(!update.symbol.is_empty() && update.symbol.chars().count() <= 128);
                assert!(!update.symbol.chars().any(char::is_control));
            }
            Ok(Item::Signal(signal)) => {
                assert!(line.len() <= MAX_LINE_BYTES);
                assert!(signal.qty.is_positive());
                assert!(signal.price.is_none_or(|price| price.is_positive()));
                // Exact: the digits read are the digits written back.
                assert_eq!(signal.qty.to_string().parse(), Ok(signal.qty));
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
