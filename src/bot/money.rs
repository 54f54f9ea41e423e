//! Exact decimals for money: quantities, prices, amounts and ratios as
//! whole numbers of 10^-18 in an `i128` (docs/money.md says why this and
//! not rust_decimal, from `cargo bench --bench micro -- money`).
//!
//! Every value holds 18 decimal places and stays below 10^19 in magnitude.
//! A sum is exact; a product of a quantity and a price is exact whenever
//! the two have 18 decimal places between them (any two of up to 9 each);
//! nothing is ever read through an `f64`. Where a figure needs more places
//! than it can hold (a division, a fee in basis points, a slipped price)
//! it is rounded half-to-even, once, to the places the caller's
//! [`Rounding`] says. A result beyond the range is an [`Overflow`], never
//! a wrapped or saturated value.

use std::cmp::Ordering;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Neg;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Decimal places every value holds: a product of two numbers of up to 9
/// places each is exact, and so is the float release's shortest text of
/// any number from 0.01 up (17 significant digits at most).
pub const PLACES: u32 = 18;

/// Digits before the point: every value is below 10^19 in magnitude. The
/// room left in an `i128` (10^38) lets sums and the steps of a product be
/// checked rather than wrap.
pub const WHOLE_DIGITS: u32 = 19;

const ONE: u128 = 10u128.pow(PLACES);
const LIMIT: u128 = 10u128.pow(PLACES + WHOLE_DIGITS);

/// 10^0 to 10^18: a table, where `pow` would multiply in a loop.
const POWERS_OF_TEN: [u128; PLACES as usize + 1] = {
    let mut powers = [1; PLACES as usize + 1];
    let mut index = 1;
    while index < powers.len() {
        powers[index] = powers[index - 1] * 10;
        index += 1;
    }
    powers
};

/// What a value counts, so a quantity is never added to a price.
pub mod kind {
    pub enum Quantity {}
    pub enum Price {}
    pub enum Amount {}
    pub enum Ratio {}
}

/// A decimal of kind `K`: `raw` × 10^-18.
pub struct Decimal<K> {
    raw: i128,
    kind: PhantomData<K>,
}

/// How much of something: signed (a short position is negative).
pub type Quantity = Decimal<kind::Quantity>;
/// Quote currency per unit.
pub type Price = Decimal<kind::Price>;
/// Quote currency: notionals, cash, fees, PnL.
pub type Amount = Decimal<kind::Amount>;
/// A pure number: a win rate, a profit factor.
pub type Ratio = Decimal<kind::Ratio>;

/// Why a text is not a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("is not a decimal number")]
    NotANumber,
    #[error("has more than {PLACES} decimal places")]
    TooManyPlaces,
    #[error("has more than {WHOLE_DIGITS} digits before the point")]
    TooLarge,
}

/// A result beyond what a value holds (10^19 in magnitude), or a division
/// by zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("beyond the largest value held ({WHOLE_DIGITS} digits before the point)")]
pub struct Overflow;

/// The one rounding rule: half-to-even to `places` decimal places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rounding {
    places: u32,
}

impl Rounding {
    /// Eight places: a satoshi, and more than any fiat currency needs.
    pub const DEFAULT: Rounding = Rounding { places: 8 };

    /// Four places, for a ratio: a win rate of 0.6667 is 66.67 %.
    pub const RATIO: Rounding = Rounding { places: 4 };

    pub fn new(places: u32) -> Result<Self, String> {
        if places > PLACES {
            return Err(format!(
                "{places} decimal places is more than the {PLACES} a value holds"
            ));
        }
        Ok(Rounding { places })
    }

    pub fn places(self) -> u32 {
        self.places
    }
}

impl Default for Rounding {
    fn default() -> Self {
        Rounding::DEFAULT
    }
}

/// Basis points (1/100 of a percent) with up to two decimal places, as
/// fee schedules quote them (7.5 bps is 0.075 %); below 10,000 (100 %).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BasisPoints {
    hundredths: u32,
}

/// Hundredths of a basis point in a whole.
const BPS_SCALE: u128 = 1_000_000;

impl BasisPoints {
    pub const ZERO: BasisPoints = BasisPoints { hundredths: 0 };

    pub fn parse(text: &str) -> Result<Self, String> {
        let value = Ratio::parse(text).map_err(|error| format!("{text:?} {error}"))?;
        let hundredths = value.raw / (ONE / 100) as i128;
        let exact = value.raw % (ONE / 100) as i128 == 0;
        match u32::try_from(hundredths) {
            Ok(hundredths) if exact && hundredths < 1_000_000 => Ok(BasisPoints { hundredths }),
            _ => Err(format!(
                "{text:?} must be basis points from 0 up to (not including) 10000, \
                 with at most 2 decimal places"
            )),
        }
    }

    pub fn is_zero(self) -> bool {
        self.hundredths == 0
    }
}

impl fmt::Display for BasisPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let as_ratio = Ratio::from_raw(i128::from(self.hundredths) * (ONE / 100) as i128);
        fmt::Display::fmt(&as_ratio, f)
    }
}

impl<K> Decimal<K> {
    pub const ZERO: Self = Decimal::from_raw(0);

    const fn from_raw(raw: i128) -> Self {
        Decimal {
            raw,
            kind: PhantomData,
        }
    }

    fn bounded(raw: i128) -> Result<Self, Overflow> {
        if raw.unsigned_abs() < LIMIT {
            Ok(Decimal::from_raw(raw))
        } else {
            Err(Overflow)
        }
    }

    fn signed(magnitude: u128, negative: bool) -> Result<Self, Overflow> {
        if magnitude >= LIMIT {
            return Err(Overflow);
        }
        let raw = magnitude as i128;
        Ok(Decimal::from_raw(if negative { -raw } else { raw }))
    }

    /// A JSON number's text or a string holding one (`"0.5"`, `"2.0"`,
    /// `"1e-7"`, `"-3"`), read digit by digit; an exponent is accepted
    /// because JSON allows it and the float release's journal wrote one
    /// for small numbers. A value the type cannot hold exactly is refused,
    /// never rounded.
    pub fn parse(text: &str) -> Result<Self, NumberError> {
        parse_raw(text.as_bytes()).map(Decimal::from_raw)
    }

    /// A whole number.
    pub fn from_int(value: i64) -> Result<Self, Overflow> {
        Decimal::bounded(i128::from(value) * ONE as i128)
    }

    pub fn is_zero(self) -> bool {
        self.raw == 0
    }

    pub fn is_positive(self) -> bool {
        self.raw > 0
    }

    pub fn is_negative(self) -> bool {
        self.raw < 0
    }

    pub fn abs(self) -> Self {
        Decimal::from_raw(self.raw.abs())
    }

    pub fn checked_add(self, other: Self) -> Result<Self, Overflow> {
        Decimal::bounded(self.raw + other.raw)
    }

    pub fn checked_sub(self, other: Self) -> Result<Self, Overflow> {
        Decimal::bounded(self.raw - other.raw)
    }

    /// Rounded half-to-even to `rounding`'s places.
    pub fn round(self, rounding: Rounding) -> Result<Self, Overflow> {
        let magnitude = round_quotient(self.raw.unsigned_abs(), 0, 1, rounding.places)?;
        Decimal::signed(magnitude, self.raw < 0)
    }

    /// Rounded half-to-even to 8 places ([`Rounding::DEFAULT`]), for a
    /// table or a JSON field a person reads, while the exact figures it
    /// came from are kept; the value itself if rounding would leave the
    /// range (only a hair under 10^19 can).
    pub fn for_people(self) -> Self {
        self.round(Rounding::DEFAULT).unwrap_or(self)
    }

    /// For a Prometheus sample, the one place a float belongs; within one
    /// unit in the last place of the nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.raw as f64 / ONE as f64
    }

    /// Appends the text [`fmt::Display`] writes to `out` (the journal's
    /// writer, which writes no `fmt` machinery).
    pub(crate) fn write_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.digits(&mut [0; 40]));
    }

    /// The text [`fmt::Display`] writes, into `buffer`: no exponent, no
    /// trailing zeros, `0` for zero.
    fn format(self, buffer: &mut [u8; 40]) -> &str {
        std::str::from_utf8(self.digits(buffer)).unwrap_or_default()
    }

    /// [`Decimal::format`]'s bytes, ASCII.
    fn digits(self, buffer: &mut [u8; 40]) -> &[u8] {
        let (whole, fraction) = split(self.raw.unsigned_abs());
        // Below 10^19 and 10^18, which a u64 holds.
        let (mut whole, mut fraction) = (whole as u64, fraction as u64);
        let mut at = buffer.len();
        if fraction != 0 {
            let mut places = PLACES;
            while fraction % 10_000 == 0 {
                fraction /= 10_000;
                places -= 4;
            }
            while fraction % 10 == 0 {
                fraction /= 10;
                places -= 1;
            }
            for _ in 0..places {
                at -= 1;
                buffer[at] = b'0' + (fraction % 10) as u8;
                fraction /= 10;
            }
            at -= 1;
            buffer[at] = b'.';
        }
        loop {
            at -= 1;
            buffer[at] = b'0' + (whole % 10) as u8;
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        if self.raw < 0 {
            at -= 1;
            buffer[at] = b'-';
        }
        &buffer[at..]
    }
}

impl Quantity {
    /// What `self` of something costs at `price`: exact to 18 places (the
    /// 19th and later, possible only when the two have more than 18
    /// places between them, are rounded half-to-even).
    pub fn times(self, price: Price) -> Result<Amount, Overflow> {
        let magnitude = multiply(self.raw.unsigned_abs(), price.raw.unsigned_abs())?;
        Amount::signed(magnitude, (self.raw < 0) != (price.raw < 0))
    }
}

impl Price {
    /// The price moved by `bps` up (`up`) or down, rounded.
    pub fn slipped(
        self,
        bps: BasisPoints,
        up: bool,
        rounding: Rounding,
    ) -> Result<Price, Overflow> {
        let hundredths = u128::from(bps.hundredths);
        let factor = if up {
            BPS_SCALE + hundredths
        } else {
            BPS_SCALE - hundredths
        };
        self.scaled(factor, BPS_SCALE, rounding)
    }
}

impl Amount {
    /// `bps` of `self`, rounded: a fee on a notional.
    pub fn bps(self, bps: BasisPoints, rounding: Rounding) -> Result<Amount, Overflow> {
        self.scaled(u128::from(bps.hundredths), BPS_SCALE, rounding)
    }

    /// The part `part` of `whole` gets of `self`, rounded: a fill's fee
    /// shared between the position it closes and the one it opens.
    pub fn share(
        self,
        part: Quantity,
        whole: Quantity,
        rounding: Rounding,
    ) -> Result<Amount, Overflow> {
        self.scaled(part.raw.unsigned_abs(), whole.raw.unsigned_abs(), rounding)
    }

    /// `self` divided by `count`, rounded: an average over trades.
    pub fn divided(self, count: u64, rounding: Rounding) -> Result<Amount, Overflow> {
        self.scaled(1, u128::from(count), rounding)
    }

    /// The price per unit, rounded: an average entry price from what the
    /// quantity cost.
    pub fn per(self, qty: Quantity, rounding: Rounding) -> Result<Price, Overflow> {
        let magnitude = divide(
            self.raw.unsigned_abs(),
            qty.raw.unsigned_abs(),
            rounding.places,
        )?;
        Price::signed(magnitude, (self.raw < 0) != (qty.raw < 0))
    }

    /// `self` over `other`, rounded: a profit factor.
    pub fn ratio(self, other: Amount, rounding: Rounding) -> Result<Ratio, Overflow> {
        let magnitude = divide(
            self.raw.unsigned_abs(),
            other.raw.unsigned_abs(),
            rounding.places,
        )?;
        Ratio::signed(magnitude, (self.raw < 0) != (other.raw < 0))
    }
}

impl Ratio {
    /// `part` out of `whole`, rounded: a win rate.
    pub fn of(part: u64, whole: u64, rounding: Rounding) -> Result<Ratio, Overflow> {
        let magnitude = divide(u128::from(part), u128::from(whole), rounding.places)?;
        Ratio::signed(magnitude, false)
    }
}

impl<K> Decimal<K> {
    /// `self` × `numerator` / `denominator` (plain integers), rounded.
    fn scaled(
        self,
        numerator: u128,
        denominator: u128,
        rounding: Rounding,
    ) -> Result<Self, Overflow> {
        let (quotient, remainder) =
            multiply_divide(self.raw.unsigned_abs(), numerator, denominator).ok_or(Overflow)?;
        let magnitude = round_quotient(quotient, remainder, denominator, rounding.places)?;
        Decimal::signed(magnitude, self.raw < 0)
    }
}

/// `a` × `b` of two raw values, as a raw value: split at the point into
/// `u64` halves (both are below 10^37, so a whole part is below 10^19 and
/// a fraction below 10^18), so no step leaves a `u128`; the product of
/// the fractions (36 places) is rounded half-to-even to 18.
fn multiply(a: u128, b: u128) -> Result<u128, Overflow> {
    const WHOLE_LIMIT: u128 = LIMIT / ONE;
    let (a_whole, a_fraction) = split(a);
    let (b_whole, b_fraction) = split(b);
    let whole = a_whole * b_whole;
    if whole >= WHOLE_LIMIT {
        return Err(Overflow);
    }
    let cross = a_whole * b_fraction + a_fraction * b_whole;
    let tiny = a_fraction * b_fraction;
    if tiny == 0 {
        // A whole quantity, or a whole price: nothing past the 18th place.
        let raw = whole * ONE + cross;
        return if raw < LIMIT { Ok(raw) } else { Err(Overflow) };
    }
    let (tiny_whole, tiny_rest) = split(tiny);
    round_quotient(whole * ONE + cross + tiny_whole, tiny_rest, ONE, PLACES)
}

/// A raw magnitude's whole units and fraction, each below 2^64. A value
/// below 18.4 (a quantity, mostly) is divided as a `u64`, by a constant:
/// a multiplication, where the reciprocal takes four.
fn split(raw: u128) -> (u128, u128) {
    if let Ok(narrow) = u64::try_from(raw) {
        const ONE_NARROW: u64 = ONE as u64;
        return (
            u128::from(narrow / ONE_NARROW),
            u128::from(narrow % ONE_NARROW),
        );
    }
    let whole = div_one(raw);
    (whole, raw - whole * ONE)
}

/// ⌈2^187 / 10^18⌉, which a `u128` just holds.
const RECIPROCAL_OF_ONE: u128 = 0x9392_ee8e_921d_5d07_3aff_322e_6243_9fd0;

/// `n` / 10^18, for `n` below 2^123 (any raw magnitude), as a product
/// with the reciprocal: a `u128` division is a library call, and a
/// quantity × a price would take three. Exact, because the reciprocal's
/// excess (it × 10^18 − 2^187, below 10^18) times any such `n` stays
/// below 2^187, too little to reach the next whole quotient.
fn div_one(n: u128) -> u128 {
    widening_multiply(n, RECIPROCAL_OF_ONE).0 >> (187 - 128)
}

/// `n` / `d` with `places` decimal places, rounded half-to-even, as a raw
/// value. Long division a few digits at a time, as many as `u128` has room
/// for beside the divisor (below 10^37, so always at least one); a
/// divisor below a hundred units takes a single step.
fn divide(n: u128, d: u128, places: u32) -> Result<u128, Overflow> {
    // Any raw magnitude is below 2^123; the room below needs the bound.
    if d == 0 || d >= 1 << 123 {
        return Err(Overflow);
    }
    // One library call a step: the remainder is what the quotient's
    // product leaves.
    let mut quotient = n / d;
    let mut remainder = n - quotient * d;
    // 10^room × d fits: 2^(zeros − 1) ≥ 10^room, log10(2) taken as 0.3.
    let room = (d.leading_zeros() - 1) * 3 / 10;
    let mut left = places;
    while left > 0 {
        let digits = room.min(left);
        let widen = POWERS_OF_TEN[digits as usize];
        let widened = remainder * widen;
        let step = widened / d;
        quotient = quotient
            .checked_mul(widen)
            .and_then(|quotient| quotient.checked_add(step))
            .ok_or(Overflow)?;
        remainder = widened - step * d;
        left -= digits;
    }
    let rounded = round_quotient(quotient, remainder, d, PLACES)?;
    rounded
        .checked_mul(POWERS_OF_TEN[(PLACES - places) as usize])
        .filter(|raw| *raw < LIMIT)
        .ok_or(Overflow)
}

/// `quotient` + `remainder`/`divisor` (a raw value and what is left over),
/// rounded half-to-even to `places`.
fn round_quotient(
    quotient: u128,
    remainder: u128,
    divisor: u128,
    places: u32,
) -> Result<u128, Overflow> {
    if places >= PLACES {
        // The remainder is below the divisor (below 2^127), so twice it fits.
        let up = match (2 * remainder).cmp(&divisor) {
            Ordering::Less => false,
            Ordering::Equal => quotient % 2 == 1,
            Ordering::Greater => true,
        };
        return Some(quotient + u128::from(up))
            .filter(|raw| *raw < LIMIT)
            .ok_or(Overflow);
    }
    let step = POWERS_OF_TEN[(PLACES - places) as usize];
    let (kept, rest) = (quotient / step, quotient % step);
    let up = match rest.cmp(&(step / 2)) {
        Ordering::Less => false,
        Ordering::Equal => remainder > 0 || kept % 2 == 1,
        Ordering::Greater => true,
    };
    (kept + u128::from(up))
        .checked_mul(step)
        .filter(|raw| *raw < LIMIT)
        .ok_or(Overflow)
}

/// (`a` × `b` / `d`, what is left over), exact; `None` for a zero divisor
/// or a quotient beyond `u128`. A product that fits `u128` (a fee on any
/// notional below 10^14, say) takes one division; a larger one goes
/// through 256 bits, a bit at a time.
fn multiply_divide(a: u128, b: u128, d: u128) -> Option<(u128, u128)> {
    if d == 0 {
        return None;
    }
    if let Some(product) = a.checked_mul(b) {
        return Some((product / d, product % d));
    }
    let (high, low) = widening_multiply(a, b);
    if high >= d {
        return None;
    }
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        if carry == 1 || remainder >= d {
            remainder = remainder.wrapping_sub(d);
            quotient |= 1 << bit;
        }
    }
    Some((quotient, remainder))
}

/// The 256-bit product of `a` and `b` as (high, low) halves.
fn widening_multiply(a: u128, b: u128) -> (u128, u128) {
    const HALF: u128 = u64::MAX as u128;
    let (a_high, a_low) = (a >> 64, a & HALF);
    let (b_high, b_low) = (b >> 64, b & HALF);
    let low_low = a_low * b_low;
    let low_high = a_low * b_high;
    let high_low = a_high * b_low;
    let middle = (low_low >> 64) + (low_high & HALF) + (high_low & HALF);
    let low = (low_low & HALF) | (middle << 64);
    let high = a_high * b_high + (low_high >> 64) + (high_low >> 64) + (middle >> 64);
    (high, low)
}

/// Significant digits read so far: the value is `mantissa` × 10^`scale`,
/// and `zeros` zeros wait to be appended if another digit follows.
#[derive(Default)]
struct Digits {
    mantissa: u128,
    scale: i64,
    zeros: i64,
    /// Digits past what `u128` holds were dropped (and counted in
    /// `scale`): the text has more than any value holds.
    lost: bool,
}

impl Digits {
    /// Reads digits from `at`; returns how many.
    fn read(&mut self, bytes: &[u8], at: &mut usize, fraction: bool) -> usize {
        let start = *at;
        while let Some(&digit @ b'0'..=b'9') = bytes.get(*at) {
            *at += 1;
            if fraction {
                self.scale -= 1;
            }
            if digit == b'0' {
                self.zeros += 1;
            } else {
                self.push(u128::from(digit - b'0'));
            }
        }
        *at - start
    }

    fn push(&mut self, digit: u128) {
        let shift = self.zeros + 1;
        self.zeros = 0;
        let appended = (!self.lost)
            .then(|| 10u128.checked_pow(u32::try_from(shift).ok()?))
            .flatten()
            .and_then(|power| self.mantissa.checked_mul(power))
            .and_then(|shifted| shifted.checked_add(digit));
        match appended {
            Some(mantissa) => self.mantissa = mantissa,
            None => {
                self.lost = true;
                self.scale += shift;
            }
        }
    }

    fn raw(self, exponent: i64, negative: bool) -> Result<i128, NumberError> {
        if self.mantissa == 0 {
            return Ok(0);
        }
        let scale = self.scale + self.zeros + exponent;
        let before_point = i64::from(self.mantissa.ilog10()) + 1 + scale;
        if before_point > i64::from(WHOLE_DIGITS) {
            return Err(NumberError::TooLarge);
        }
        if self.lost || scale < -i64::from(PLACES) {
            return Err(NumberError::TooManyPlaces);
        }
        // At most 37 digits in all, so below 10^37.
        let shift =
            u32::try_from(scale + i64::from(PLACES)).map_err(|_| NumberError::TooManyPlaces)?;
        let raw = (self.mantissa * 10u128.pow(shift)) as i128;
        Ok(if negative { -raw } else { raw })
    }
}

/// The JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn parse_raw(bytes: &[u8]) -> Result<i128, NumberError> {
    plain(bytes).map_or_else(|| general(bytes), Ok)
}

/// What nearly every number looks like (`0.25`, `64415.13`, `-3`): no
/// exponent, at most 19 digits and 18 of them after the point, so the
/// digits fit a `u64` unchecked. `None` sends anything else, errors
/// included, to [`general`].
fn plain(bytes: &[u8]) -> Option<i128> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    // At most 19 digits and a point.
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut point = None;
    for (at, &byte) in digits.iter().enumerate() {
        let digit = byte.wrapping_sub(b'0');
        if digit <= 9 {
            // 20 digits may wrap: refused below, by their count.
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
        } else if byte == b'.' && point.is_none() && at > 0 && at + 1 < digits.len() {
            point = Some(at);
        } else {
            return None;
        }
    }
    let whole = point.unwrap_or(digits.len());
    let fraction = point.map_or(0, |point| digits.len() - point - 1);
    if (whole > 1 && digits[0] == b'0') || whole + fraction > 19 || fraction > PLACES as usize {
        return None;
    }
    // Below 10^19 × 10^18.
    let raw = (u128::from(mantissa) * POWERS_OF_TEN[PLACES as usize - fraction]) as i128;
    Some(if negative { -raw } else { raw })
}

/// Any JSON number, digit by digit, with the limits checked.
fn general(bytes: &[u8]) -> Result<i128, NumberError> {
    let negative = bytes.first() == Some(&b'-');
    let mut at = usize::from(negative);
    let mut digits = Digits::default();
    let whole = digits.read(bytes, &mut at, false);
    if whole == 0 || (whole > 1 && bytes[at - whole] == b'0') {
        return Err(NumberError::NotANumber);
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits.read(bytes, &mut at, true) == 0 {
            return Err(NumberError::NotANumber);
        }
    }
    let mut exponent = 0i64;
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        let negative_exponent = bytes.get(at) == Some(&b'-');
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let start = at;
        while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
            // Far past any value's reach, and never near overflowing.
            exponent = (exponent * 10 + i64::from(digit - b'0')).min(1 << 40);
            at += 1;
        }
        if at == start {
            return Err(NumberError::NotANumber);
        }
        if negative_exponent {
            exponent = -exponent;
        }
    }
    if at != bytes.len() {
        return Err(NumberError::NotANumber);
    }
    digits.raw(exponent, negative)
}

impl<K> Clone for Decimal<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Decimal<K> {}

impl<K> PartialEq for Decimal<K> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<K> Eq for Decimal<K> {}

impl<K> PartialOrd for Decimal<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Decimal<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl<K> Default for Decimal<K> {
    fn default() -> Self {
        Decimal::ZERO
    }
}

/// Always in range: the range is symmetric.
impl<K> Neg for Decimal<K> {
    type Output = Self;

    fn neg(self) -> Self {
        Decimal::from_raw(-self.raw)
    }
}

impl<K> fmt::Display for Decimal<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.format(&mut [0; 40]))
    }
}

impl<K> fmt::Debug for Decimal<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<K> std::str::FromStr for Decimal<K> {
    type Err = NumberError;

    fn from_str(text: &str) -> Result<Self, NumberError> {
        Decimal::parse(text)
    }
}

/// As a JSON string (`"0.3"`), as exchange APIs write money.
impl<K> Serialize for Decimal<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.format(&mut [0; 40]))
    }
}

/// From a string (what this release writes) or a JSON number. A number
/// with a fraction reaches a deserializer as an `f64` (serde_json's
/// `arbitrary_precision` would keep its text, but breaks tagged enums and
/// `flatten`), so it is read back through its shortest round-trip text:
/// exactly the text the float release's journal wrote for it, so `0.1`
/// reads as 0.1 and `0.30000000000000004` as itself. Text that is not
/// the shortest form of its float (`0.1000000000000000055`) reads as the
/// shortest one: a signal's numbers are read from the line's own text
/// with [`Decimal::parse`] instead.
impl<'de, K> Deserialize<'de> for Decimal<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DecimalVisitor(PhantomData))
    }
}

struct DecimalVisitor<K>(PhantomData<K>);

impl<K> DecimalVisitor<K> {
    fn text<E: de::Error>(text: &str) -> Result<Decimal<K>, E> {
        Decimal::parse(text).map_err(|error| E::custom(format!("{:?} {error}", clip(text))))
    }
}

impl<K> Visitor<'_> for DecimalVisitor<K> {
    type Value = Decimal<K>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a decimal number or a string holding one")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Decimal<K>, E> {
        Self::text(text)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Decimal<K>, E> {
        Decimal::from_int(value).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal<K>, E> {
        i64::try_from(value)
            .map_err(|_| Overflow)
            .and_then(Decimal::from_int)
            .map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Decimal<K>, E> {
        if !value.is_finite() {
            return Err(E::custom(format!("{value} is not a decimal number")));
        }
        Self::text(zmij::Buffer::new().format_finite(value))
    }
}

/// Keeps echoed input short in error messages.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Values written in tests, where a typo should fail loudly.
#[cfg(test)]
pub(crate) mod literals {
    use super::{Amount, Decimal, Price, Quantity, Ratio};

    fn literal<K>(text: &str) -> Decimal<K> {
        Decimal::parse(text).unwrap_or_else(|error| panic!("{text:?} {error}"))
    }

    pub(crate) fn quantity(text: &str) -> Quantity {
        literal(text)
    }

    pub(crate) fn price(text: &str) -> Price {
        literal(text)
    }

    pub(crate) fn amount(text: &str) -> Amount {
        literal(text)
    }

    pub(crate) fn ratio(text: &str) -> Ratio {
        literal(text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::literals::{amount, price, quantity};
    use super::*;

    #[test]
    fn a_tenth_and_two_tenths_are_three_tenths() {
        let sum = quantity("0.1").checked_add(quantity("0.2")).unwrap();
        assert_eq!(sum, quantity("0.3"));
        assert_eq!(sum.to_string(), "0.3");
        assert_eq!(sum.checked_sub(quantity("0.3")).unwrap(), Quantity::ZERO);
    }

    #[test]
    fn prints_the_exact_value_and_nothing_more() {
        for (text, shown) in [
            ("0.3", "0.3"),
            ("64415.13", "64415.13"),
            ("0", "0"),
            ("-0", "0"),
            ("0.0", "0"),
            ("2.0", "2"),
            ("100", "100"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1e-7", "0.0000001"),
            ("-12.50", "-12.5"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("0.000000000000000001", "0.000000000000000001"),
            (
                "9999999999999999999.999999999999999999",
                "9999999999999999999.999999999999999999",
            ),
            (
                "-9999999999999999999.999999999999999999",
                "-9999999999999999999.999999999999999999",
            ),
            ("12345e-18", "0.000000000000012345"),
            ("0.00000000000000000000e5", "0"),
            ("1.5000000000000000000000000000000000000000000", "1.5"),
            ("64250.5", "64250.5"),
        ] {
            let value = Price::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(value.to_string(), shown, "{text}");
            assert_eq!(Price::parse(shown).unwrap(), value, "{shown} reads back");
        }
        assert_eq!(
            format!("{:>8}|{:<6}|", price("1.5"), price("2")),
            "     1.5|2     |"
        );
    }

    #[test]
    fn refuses_what_it_cannot_hold_naming_the_limit() {
        for (text, error) in [
            ("0.0000000000000000001", NumberError::TooManyPlaces),
            ("1e-19", NumberError::TooManyPlaces),
            ("0.1234567890123456789", NumberError::TooManyPlaces),
            (
                "1.00000000000000000000000000000000000000000001",
                NumberError::TooManyPlaces,
            ),
            ("10000000000000000000", NumberError::TooLarge),
            ("1e19", NumberError::TooLarge),
            ("1e999999999999999999999", NumberError::TooLarge),
            (
                "123456789012345678901234567890123456789012345",
                NumberError::TooLarge,
            ),
            ("0.000001e25", NumberError::TooLarge),
        ] {
            assert_eq!(Quantity::parse(text), Err(error), "{text}");
        }
        assert_eq!(
            NumberError::TooManyPlaces.to_string(),
            "has more than 18 decimal places"
        );
        assert_eq!(
            NumberError::TooLarge.to_string(),
            "has more than 19 digits before the point"
        );
        assert_eq!(
            Quantity::parse("1e-999999999999999999"),
            Err(NumberError::TooManyPlaces)
        );
        assert_eq!(Quantity::parse("0e-999999999999999999"), Ok(Quantity::ZERO));
    }

    #[test]
    fn reads_only_the_json_number_grammar() {
        for text in [
            "", "-", " 1", "1 ", "+1", "01", "-01", "1.", ".5", "0x10", "NaN", "Infinity", "1e",
            "1e+", "1_000", "1,5", "--1", "1.2.3", "1e5.5", "١",
        ] {
            assert_eq!(
                Quantity::parse(text),
                Err(NumberError::NotANumber),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_float_release_journal_text_reads_as_written() {
        // serde_json hands a fractional number over as an f64; its
        // shortest text is the text the journal wrote.
        for text in [
            "0.1",
            "64250.5",
            "2.0",
            "0.30000000000000004",
            "1e-7",
            "7",
            "-3.25",
        ] {
            let read: Quantity = serde_json::from_str(text).unwrap();
            assert_eq!(read, quantity(text), "{text}");
        }
        let read: Quantity = serde_json::from_str("\"0.30000000000000004\"").unwrap();
        assert_eq!(read.to_string(), "0.30000000000000004");
        let refused = serde_json::from_str::<Quantity>("\"1e-30\"").unwrap_err();
        assert!(
            refused.to_string().contains("more than 18 decimal places"),
            "{refused}"
        );
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        assert!(serde_json::from_str::<Quantity>("1e300").is_err());
    }

    #[test]
    fn serializes_as_a_string() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Fill {
            qty: Quantity,
            price: Price,
        }
        let fill = Fill {
            qty: quantity("0.3"),
            price: price("64415.13"),
        };
        let json = serde_json::to_string(&fill).unwrap();
        assert_eq!(json, r#"{"qty":"0.3","price":"64415.13"}"#);
        assert_eq!(serde_json::from_str::<Fill>(&json).unwrap(), fill);
    }

    #[test]
    fn a_product_is_exact() {
        assert_eq!(
            quantity("0.25").times(price("64250.5")).unwrap(),
            amount("16062.625")
        );
        assert_eq!(quantity("-3").times(price("0.1")).unwrap(), amount("-0.3"));
        assert_eq!(
            quantity("0.123456789")
                .times(price("98765.432109876"))
                .unwrap(),
            amount("12193.263112482786148164")
        );
        assert_eq!(
            quantity("0.30000000000000004")
                .times(price("64250.5"))
                .unwrap(),
            amount("19275.150000000002570020")
        );
        // 19 places between them: the last is rounded half-to-even.
        assert_eq!(
            quantity("0.000000000000000005")
                .times(price("0.1"))
                .unwrap(),
            amount("0")
        );
        assert_eq!(
            quantity("0.000000000000000015")
                .times(price("0.1"))
                .unwrap(),
            amount("0.000000000000000002")
        );
        assert_eq!(
            quantity("3000000000").times(price("3000000000")).unwrap(),
            amount("9000000000000000000")
        );
        assert_eq!(
            quantity("4000000000").times(price("3000000000")),
            Err(Overflow)
        );
        assert_eq!(
            quantity("9999999999999999999").times(price("9999999999999999999")),
            Err(Overflow)
        );
    }

    #[test]
    fn rounds_half_to_even() {
        let two = Rounding::new(2).unwrap();
        for (text, rounded) in [
            ("0.125", "0.12"),
            ("0.135", "0.14"),
            ("0.1251", "0.13"),
            ("-0.125", "-0.12"),
            ("-0.135", "-0.14"),
            ("2.5", "2.5"),
            ("0.005", "0"),
            ("0.015", "0.02"),
        ] {
            assert_eq!(amount(text).round(two).unwrap(), amount(rounded), "{text}");
        }
        let none = Rounding::new(0).unwrap();
        assert_eq!(amount("2.5").round(none).unwrap(), amount("2"));
        assert_eq!(amount("3.5").round(none).unwrap(), amount("4"));
        assert_eq!(amount("9999999999999999999.5").round(none), Err(Overflow));
        assert!(Rounding::new(19).is_err());
        assert_eq!(
            price("64409.523809523809523809").for_people(),
            price("64409.52380952")
        );
    }

    #[test]
    fn fees_and_slippage_in_basis_points() {
        let rounding = Rounding::DEFAULT;
        let bps = |text: &str| BasisPoints::parse(text).unwrap();
        assert_eq!(
            amount("16062.625").bps(bps("10"), rounding).unwrap(),
            amount("16.062625")
        );
        assert_eq!(
            amount("100").bps(bps("7.5"), rounding).unwrap(),
            amount("0.075")
        );
        // 0.000000005 is a tie: to the even 0.
        assert_eq!(
            amount("0.00001").bps(bps("5"), rounding).unwrap(),
            amount("0")
        );
        assert_eq!(
            amount("0.00003").bps(bps("5"), rounding).unwrap(),
            amount("0.00000002")
        );
        assert_eq!(
            amount("-100").bps(bps("1"), rounding).unwrap(),
            amount("-0.01")
        );
        assert_eq!(
            price("100").slipped(bps("5"), true, rounding).unwrap(),
            price("100.05")
        );
        assert_eq!(
            price("100").slipped(bps("5"), false, rounding).unwrap(),
            price("99.95")
        );
        assert_eq!(
            price("0.00000003")
                .slipped(bps("1"), true, rounding)
                .unwrap(),
            price("0.00000003")
        );
        assert_eq!(
            price("64250.5")
                .slipped(BasisPoints::ZERO, true, rounding)
                .unwrap(),
            price("64250.5")
        );
        assert_eq!(bps("7.5").to_string(), "7.5");
        for wrong in ["-1", "10000", "0.001", "x", "1e9"] {
            assert!(BasisPoints::parse(wrong).is_err(), "{wrong}");
        }
        // A notional past what a u128 product holds takes the wide path.
        assert_eq!(
            amount("9999999999999999999")
                .bps(bps("9999.99"), rounding)
                .unwrap(),
            amount("9999989999999999999.000001")
        );
    }

    #[test]
    fn divides_rounding_once() {
        let rounding = Rounding::DEFAULT;
        assert_eq!(
            amount("100").per(quantity("3"), rounding).unwrap(),
            price("33.33333333")
        );
        assert_eq!(
            amount("-200").per(quantity("3"), rounding).unwrap(),
            price("-66.66666667")
        );
        assert_eq!(
            amount("1")
                .per(quantity("8"), Rounding::new(2).unwrap())
                .unwrap(),
            price("0.12")
        );
        assert_eq!(amount("1").per(quantity("0"), rounding), Err(Overflow));
        assert_eq!(
            amount("9999999999999999999").per(quantity("0.1"), rounding),
            Err(Overflow)
        );
        assert_eq!(
            amount("1")
                .per(
                    quantity("9999999999999999999.999999999999999999"),
                    Rounding::new(18).unwrap()
                )
                .unwrap(),
            Price::ZERO
        );
        assert_eq!(
            amount("10").ratio(amount("4"), rounding).unwrap(),
            Ratio::parse("2.5").unwrap()
        );
        assert_eq!(
            Ratio::of(2, 3, Rounding::new(4).unwrap()).unwrap(),
            Ratio::parse("0.6667").unwrap()
        );
        assert_eq!(amount("10").divided(4, rounding).unwrap(), amount("2.5"));
        assert_eq!(
            amount("1")
                .share(quantity("1"), quantity("3"), rounding)
                .unwrap(),
            amount("0.33333333")
        );
    }

    #[test]
    fn the_reciprocal_of_one_is_the_least_above_two_to_the_187() {
        let over = widening_multiply(RECIPROCAL_OF_ONE, ONE);
        let under = widening_multiply(RECIPROCAL_OF_ONE - 1, ONE);
        assert!(over >= (1 << (187 - 128), 0) && under < (1 << (187 - 128), 0));
        for n in [
            0,
            1,
            ONE - 1,
            ONE,
            ONE + 1,
            LIMIT - 1,
            LIMIT,
            (1 << 123) - 1,
        ] {
            assert_eq!(div_one(n), n / ONE, "{n}");
        }
        for whole in [1u128, 7, 10u128.pow(18), 10u128.pow(19) - 1] {
            let n = whole * ONE;
            assert_eq!((div_one(n - 1), div_one(n)), (whole - 1, whole));
        }
    }

    #[test]
    fn the_wide_division_agrees_with_the_narrow_one() {
        // Products past u128: check q × d + r = a × b through 256 bits.
        let cases = [
            (u128::MAX, u128::MAX, u128::MAX),
            (10u128.pow(37) - 1, 10u128.pow(37) - 1, 10u128.pow(36) + 7),
            (1 << 100, 1 << 100, (1 << 90) + 3),
        ];
        for (a, b, d) in cases {
            let (quotient, remainder) = multiply_divide(a, b, d).unwrap();
            assert!(remainder < d);
            let (high, low) = widening_multiply(quotient, d);
            let (low, carry) = low.overflowing_add(remainder);
            assert_eq!((high + u128::from(carry), low), widening_multiply(a, b));
        }
        assert_eq!(multiply_divide(u128::MAX, 2, 1), None);
        assert_eq!(multiply_divide(1, 1, 0), None);
    }

    proptest! {
        #[test]
        fn dividing_by_the_reciprocal_is_exact(n in 0u128..(1 << 123)) {
            prop_assert_eq!(div_one(n), n / ONE);
        }

        #[test]
        fn a_split_is_exact_above_and_below_two_to_the_64(n in 0u128..(1 << 123), shift in 0u32..123) {
            let n = n >> shift;
            prop_assert_eq!(split(n), (n / ONE, n % ONE));
        }

        #[test]
        fn text_round_trips(raw in -(LIMIT as i128 - 1)..(LIMIT as i128)) {
            let value = Amount::from_raw(raw);
            let text = value.to_string();
            prop_assert_eq!(Amount::parse(&text), Ok(value));
            prop_assert!(!text.contains('e'));
            prop_assert!(!(text.contains('.') && text.ends_with('0')), "{}", text);
        }

        #[test]
        fn text_agrees_with_integer_text(mantissa in -(10i128.pow(19))..10i128.pow(19), zeros in 0u32..19) {
            // Values with trailing zeros, which random raws seldom have;
            // below 10^19 × 10^18, LIMIT, every one.
            let raw = mantissa * 10i128.pow(zeros);
            let digits = format!("{:019}", raw.unsigned_abs());
            let (whole, fraction) = digits.split_at(digits.len() - PLACES as usize);
            let fraction = fraction.trim_end_matches('0');
            let sign = if raw < 0 { "-" } else { "" };
            let expected = if fraction.is_empty() {
                format!("{sign}{whole}")
            } else {
                format!("{sign}{whole}.{fraction}")
            };
            prop_assert_eq!(Amount::from_raw(raw).to_string(), expected);
        }

        #[test]
        fn the_fast_path_agrees_with_the_general_one(text in "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?") {
            let general = general(text.as_bytes());
            match plain(text.as_bytes()) {
                Some(raw) => prop_assert_eq!(Ok(raw), general),
                None => prop_assert!(text.len() > 19 || general.is_err(), "{}", text),
            }
        }

        #[test]
        fn the_exponent_form_reads_the_same(mantissa in 0u64..10u64.pow(12), exponent in -18i32..6) {
            let plain = Amount::from_raw(i128::from(mantissa) * 10i128.pow((PLACES as i32 + exponent) as u32));
            prop_assert_eq!(Amount::parse(&format!("{mantissa}e{exponent}")), Ok(plain));
        }

        #[test]
        fn a_product_agrees_with_integers(
            a in -(10i128.pow(15))..10i128.pow(15),
            b in -(10i128.pow(15))..10i128.pow(15),
        ) {
            // Values of 8 decimal places: the product has 16, exact.
            let qty = Quantity::from_raw(a * 10i128.pow(10));
            let price = Price::from_raw(b * 10i128.pow(10));
            let product = qty.times(price).unwrap();
            prop_assert_eq!(product.raw, a * b * 100);
        }

        #[test]
        fn sums_and_comparisons_agree_with_integers(a in -(10i128.pow(30))..10i128.pow(30), b in -(10i128.pow(30))..10i128.pow(30)) {
            let (x, y) = (Amount::from_raw(a), Amount::from_raw(b));
            prop_assert_eq!(x.checked_add(y).unwrap().raw, a + b);
            prop_assert_eq!(x.checked_sub(y).unwrap().raw, a - b);
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }

        #[test]
        fn the_float_release_shortest_text_reads_exactly(value in 0.01f64..1e15) {
            let text = zmij::Buffer::new().format_finite(value).to_owned();
            let read: Amount = serde_json::from_str(&text).unwrap();
            // The decimal the text says, whatever the float is.
            prop_assert_eq!(read, Amount::parse(&text).unwrap());
        }
    }
}
