//! What bounds the set of symbols the bot keeps state for (issue 16).
//!
//! Every symbol the bot trades costs memory for as long as it runs (its
//! position and fill counts; the journal's fills replay it on every start)
//! and, in `/metrics`, series a Prometheus server stores on every scrape.
//! A feed chooses the symbols, so a buggy or hostile one (a counter in the
//! symbol field, say) could grow all of that without end. Two bounds hold
//! it: an optional allowlist (`SYMBOLS`) and a cap on how many symbols the
//! engine holds (`MAX_SYMBOLS`); `METRICS_MAX_SYMBOLS` bounds the series
//! (see `metrics::SymbolSeries`).
//!
//! Replay is never refused: a journal written before the bound existed, or
//! under a larger `MAX_SYMBOLS` or another allowlist, still recovers every
//! position it holds (history is the truth; dropping a position would lose
//! money on paper). The bound then stops every new symbol; since no symbol
//! is forgotten yet (a flat, idle one could be, now that issue 11's
//! exactly-once window bounds the ids a restart must remember), that is for
//! good.

use std::collections::HashSet;

use super::signal::{Reason, Reject, MAX_FIELD_CHARS};

/// `MAX_SYMBOLS` by default: room for any real strategy's universe (a few
/// to a few hundred instruments), while a feed that invents symbols is
/// stopped after about 150 KiB of positions.
pub(crate) const DEFAULT_MAX_SYMBOLS: u32 = 1_000;

/// `METRICS_MAX_SYMBOLS` by default: 4 series a symbol, so at most 404
/// per-symbol series (with `other`), which any Prometheus stores easily.
pub(crate) const DEFAULT_METRICS_MAX_SYMBOLS: u32 = 100;

/// The symbol settings, as validated from `SYMBOLS`, `MAX_SYMBOLS` and
/// `METRICS_MAX_SYMBOLS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymbolSettings {
    /// The only symbols traded, in the order given; `None`: any symbol.
    pub(crate) allowlist: Option<Vec<String>>,
    /// Most symbols the engine holds; a signal that would add one more is
    /// rejected as `too_many_symbols`.
    pub(crate) max_symbols: usize,
    /// Most symbols with series of their own in `/metrics`.
    pub(crate) metrics_max_symbols: usize,
}

impl Default for SymbolSettings {
    fn default() -> Self {
        SymbolSettings {
            allowlist: None,
            max_symbols: DEFAULT_MAX_SYMBOLS as usize,
            metrics_max_symbols: DEFAULT_METRICS_MAX_SYMBOLS as usize,
        }
    }
}

/// A setting refused, with the flag and env var it came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) flag: &'static str,
    pub(crate) env: &'static str,
    pub(crate) problem: String,
}

impl SymbolSettings {
    /// Validates the raw values (an empty `symbols` is no allowlist).
    pub(crate) fn new(
        symbols: &[String],
        max_symbols: u32,
        metrics_max_symbols: u32,
    ) -> Result<Self, Invalid> {
        let invalid = |problem: String| Invalid {
            flag: "symbols",
            env: "SYMBOLS",
            problem,
        };
        let mut allowlist: Vec<String> = Vec::new();
        for symbol in symbols.iter().map(|symbol| symbol.trim()) {
            // A symbol a signal could never carry would never match: a typo.
            if symbol.is_empty()
                || symbol.chars().count() > MAX_FIELD_CHARS
                || symbol.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "{symbol:?} is not a symbol (1 to {MAX_FIELD_CHARS} printable characters)"
                )));
            }
            if !allowlist.iter().any(|listed| listed == symbol) {
                allowlist.push(symbol.to_owned());
            }
        }
        let max_symbols = max_symbols as usize;
        if allowlist.len() > max_symbols {
            return Err(invalid(format!(
                "lists {} symbols, more than --max-symbols (MAX_SYMBOLS) {max_symbols}: \
                 the ones past it could never trade; raise MAX_SYMBOLS",
                allowlist.len()
            )));
        }
        Ok(SymbolSettings {
            allowlist: (!allowlist.is_empty()).then_some(allowlist),
            max_symbols,
            metrics_max_symbols: metrics_max_symbols as usize,
        })
    }
}

/// The engine's side of the settings: which new symbols it may admit.
pub(crate) struct SymbolBound {
    allowlist: Option<HashSet<String>>,
    max_symbols: usize,
}

impl Default for SymbolBound {
    fn default() -> Self {
        SymbolBound::new(&SymbolSettings::default())
    }
}

impl SymbolBound {
    pub(crate) fn new(settings: &SymbolSettings) -> Self {
        SymbolBound {
            allowlist: settings
                .allowlist
                .as_ref()
                .map(|allowlist| allowlist.iter().cloned().collect()),
            max_symbols: settings.max_symbols,
        }
    }

    pub(crate) fn max_symbols(&self) -> usize {
        self.max_symbols
    }

    /// Whether `symbol` may be traded at all (held or not).
    pub(crate) fn listed(&self, symbol: &str) -> bool {
        self.allowlist
            .as_ref()
            .is_none_or(|allowlist| allowlist.contains(symbol))
    }

    /// Whether a signal for `symbol`, which the engine does not hold, may
    /// make it symbol number `held + 1`. The allowlist is checked first: a
    /// symbol that is never traded is refused for that, whatever the count.
    pub(crate) fn admit(&self, symbol: &str, held: usize) -> Result<(), Reject> {
        if !self.listed(symbol) {
            return Err(unlisted(symbol));
        }
        if held >= self.max_symbols {
            return Err(Reject::new(
                Reason::TooManySymbols,
                format!(
                    "{held} symbols held already (MAX_SYMBOLS {}); {symbol:?} would be one more",
                    self.max_symbols
                ),
            ));
        }
        Ok(())
    }
}

/// The refusal of a symbol outside the allowlist.
pub(crate) fn unlisted(symbol: &str) -> Reject {
    Reject::new(
        Reason::UnknownSymbol,
        format!("symbol {symbol:?} is not in SYMBOLS"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|symbol| (*symbol).to_owned()).collect()
    }

    #[test]
    fn allowlist_is_trimmed_deduplicated_and_kept_in_order() {
        let settings = SymbolSettings::new(&strings(&[" ETH", "BTC ", "ETH"]), 10, 5).unwrap();
        assert_eq!(settings.allowlist, Some(strings(&["ETH", "BTC"])));
        assert_eq!(
            SymbolSettings::new(&[], 10, 5).unwrap().allowlist,
            None,
            "no list is no allowlist"
        );
    }

    #[test]
    fn refuses_what_could_never_match_or_never_trade() {
        let error = SymbolSettings::new(&strings(&["BTC", ""]), 10, 5).unwrap_err();
        assert_eq!((error.flag, error.env), ("symbols", "SYMBOLS"));
        assert!(SymbolSettings::new(&strings(&[&"X".repeat(129)]), 10, 5).is_err());
        let error = SymbolSettings::new(&strings(&["A", "B", "C"]), 2, 5).unwrap_err();
        assert!(error.problem.contains("MAX_SYMBOLS"), "{}", error.problem);
    }

    #[test]
    fn admits_listed_symbols_up_to_the_cap() {
        let bound = SymbolBound::new(&SymbolSettings::new(&strings(&["A", "B"]), 2, 0).unwrap());
        assert_eq!(bound.admit("A", 0), Ok(()));
        assert_eq!(
            bound.admit("Z", 0).unwrap_err().reason,
            Reason::UnknownSymbol
        );
        assert_eq!(
            bound.admit("B", 2).unwrap_err().reason,
            Reason::TooManySymbols
        );
        // Unlisted beats full: the reason that does not depend on the count.
        assert_eq!(
            bound.admit("Z", 2).unwrap_err().reason,
            Reason::UnknownSymbol
        );
    }
}
