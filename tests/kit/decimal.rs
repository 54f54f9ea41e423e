//! Exact decimals worked out in the tests, apart from the daemon's code:
//! a decimal's text as a whole number of 10^-12 in an `i128`, and back as
//! the daemon writes it. Quantities of up to 4 places times prices of up
//! to 8 are exact at that scale.

/// 1 in units of 10^-12.
pub const SCALE: i128 = 1_000_000_000_000;
/// The unit of 8 places (`MONEY_DECIMALS`' default), in 10^-12.
pub const PLACES_8: i128 = 10_000;
/// The unit of 4 places (the report's ratios), in 10^-12.
pub const PLACES_4: i128 = 100_000_000;

/// A decimal's text (`"-1.025"`, `"64400"`) as a whole number of 10^-12.
pub fn scaled(text: &str) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    assert!(
        fraction.len() <= 12,
        "{text} has more places than the test keeps"
    );
    let value = format!("{whole}{fraction:0<12}")
        .parse::<i128>()
        .unwrap_or_else(|_| panic!("{text:?} is not a decimal"));
    if negative {
        -value
    } else {
        value
    }
}

/// A decimal in JSON, a string (as outputs and snapshots hold one) or a
/// number (as a journal's fill does), as a whole number of 10^-12.
pub fn of(value: &serde_json::Value) -> i128 {
    match value {
        serde_json::Value::String(text) => scaled(text),
        serde_json::Value::Number(number) => scaled(&number.to_string()),
        other => panic!("{other} is not a decimal"),
    }
}

/// A whole number of 10^-12 as the daemon writes a decimal: no trailing
/// zeros, no exponent, `0` for zero.
pub fn text(value: i128) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let (whole, fraction) = (value.abs() / SCALE, value.abs() % SCALE);
    let fraction = format!("{fraction:012}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// `a` × `b`, which must be exact at the scale.
pub fn times(a: i128, b: i128) -> i128 {
    assert_eq!(a * b % SCALE, 0, "an inexact product");
    a * b / SCALE
}

/// `n` ÷ `d` (a count) to a multiple of `unit`, half to even.
pub fn divided(n: i128, d: i128, unit: i128) -> i128 {
    assert_eq!(n % unit, 0, "{n} is not a whole number of {unit}");
    let (quotient, remainder) = ((n / unit).div_euclid(d), (n / unit).rem_euclid(d));
    let twice = 2 * remainder;
    let up = twice > d || (twice == d && quotient % 2 != 0);
    (quotient + i128::from(up)) * unit
}

/// `n` ÷ `d`, both decimals, to a multiple of `unit`, half to even.
pub fn ratio(n: i128, d: i128, unit: i128) -> i128 {
    divided(n * SCALE, d, unit)
}
