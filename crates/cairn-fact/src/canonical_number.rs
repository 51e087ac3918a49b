//! How a number is written in canonical form: exactly as ECMAScript's
//! `Number.prototype.toString` writes it, which RFC 8785 adopts. The shortest
//! digits that read back to the same double come from Rust's `{:e}`
//! formatting; this file breaks exact ties between two shortest candidates
//! towards the even one as ECMAScript does (Rust rounds them up), and lays
//! the digits out the way ECMAScript does. It also says which numbers would
//! be written as integers beyond ±(2^53−1), which facts refuse.
//!
//! Two fast paths spare the common numbers that general route: integers
//! below 2^53 are written from their digits, and a number that some decimal
//! of at most 15 significant digits reads back as is found by scaling with
//! exact powers of ten (see [`short_decimal_digits`]); such a decimal is
//! the only one of its length that reads back, so no tie can arise.

use std::fmt::{self, Write as _};

/// Below this magnitude, every double with no fractional part is an integer
/// that ECMAScript writes as plain digits, which `i64` formatting matches.
const PLAIN_INTEGER_MAGNITUDE_LIMIT: f64 = 9_007_199_254_740_992.0;

/// ECMAScript writes numbers with a decimal point position above this in
/// exponential notation.
const FIXED_NOTATION_POINT_POSITION_MAX: i32 = 21;

/// ECMAScript writes numbers with a decimal point position at or below this
/// in exponential notation.
const FIXED_NOTATION_POINT_POSITION_MIN_EXCLUSIVE: i32 = -6;

/// From this magnitude on, ECMAScript (and so the canonical form) writes
/// numbers in exponential notation; below it, doubles without a fractional
/// part are written as integer literals.
const INTEGER_NOTATION_MAGNITUDE_LIMIT: f64 = 1e21;

/// Capacity of the stack buffer that holds a formatted number; the longest
/// `{:e}` form of a double (`-1.2345678901234567e-308`) is 24 characters.
const NUMBER_TEXT_BYTES_MAX: usize = 32;

/// Appends the canonical form of `number` to `out`.
///
/// Zero and negative zero are both written `0`. Non-finite numbers have no
/// JSON form; they never occur in parsed values, and are written `null` here
/// (as ECMAScript's `JSON.stringify` does) so that this function cannot fail.
/// [`crate::Fact::from_value`] rejects them, so no fact ever holds one.
pub(crate) fn write_canonical_number(number: f64, out: &mut Vec<u8>) {
    if !number.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if number == 0.0 {
        out.push(b'0');
        return;
    }
    if number < 0.0 {
        out.push(b'-');
    }
    let magnitude = number.abs();
    if magnitude.fract() == 0.0 && magnitude < PLAIN_INTEGER_MAGNITUDE_LIMIT {
        // The conversion is exact: the number is an integer below 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        write_decimal_digits(magnitude as u64, out);
        return;
    }
    let mut digits = DecimalDigits::new();
    let exponent = match short_decimal_digits(magnitude) {
        Some((significand, exponent)) => {
            digits.set(significand);
            exponent
        }
        None => {
            let (significand, digits_n, exponent) = shortest_significand(magnitude);
            let significand =
                prefer_even_significand_on_tie(magnitude, significand, digits_n, exponent);
            digits.set(significand);
            exponent
        }
    };
    let digits = digits.as_bytes();
    let trailing_zeros_n = digits
        .iter()
        .rev()
        .take_while(|&&digit| digit == b'0')
        .count();
    write_ecmascript_layout(&digits[..digits.len() - trailing_zeros_n], exponent, out);
}

/// Exact powers of ten as doubles: 10^0 to 10^22, the largest that a
/// double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Significands of the fast path stay below this: 15 digits.
const SHORT_SIGNIFICAND_LIMIT: f64 = 1e15;

/// The fast path for a positive finite `magnitude` that is not an integer:
/// the shortest decimal `significand × 10^-scale` (with `scale` from 1 to
/// 22 and at most 15 digits) that reads back as `magnitude`, as the
/// significand and the decimal exponent of its first digit; `None` when
/// there is none, and the general route must be taken.
///
/// Why this is exact: for each scale, `significand` is the rounded product
/// `magnitude × 10^scale`. Below 10^15 (< 2^50) that product is off by at
/// most 1/8, and a decimal of this scale that reads back as `magnitude` is
/// closer than 1/8 to the exact product, so rounding finds it if it exists.
/// Whether it reads back is tested exactly: `significand` and `10^scale`
/// are exact doubles, so their quotient, correctly rounded, is the double
/// nearest to the decimal, which is what reading it gives. The smallest
/// scale that works gives the fewest significant digits; and two decimals
/// of at most 15 digits with the same scale lie at least 10^-15 apart
/// relative to `magnitude`, more than the 2^-52 that reads back as one
/// double, so the decimal found is the only candidate of its length.
fn short_decimal_digits(magnitude: f64) -> Option<(u64, i32)> {
    if magnitude.fract() == 0.0 {
        return None;
    }
    for (scale, &power_of_ten) in EXACT_POWERS_OF_TEN.iter().enumerate().skip(1) {
        let scaled = magnitude * power_of_ten;
        if scaled >= SHORT_SIGNIFICAND_LIMIT {
            return None;
        }
        let significand = scaled.round();
        if significand != 0.0
            && significand < SHORT_SIGNIFICAND_LIMIT
            && significand / power_of_ten == magnitude
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let significand = significand as u64;
            let digits_n = i32::try_from(decimal_digits_n(significand)).expect("at most 15");
            let scale = i32::try_from(scale).expect("at most 22");
            return Some((significand, digits_n - scale - 1));
        }
    }
    None
}

/// Number of decimal digits of `number` (1 for 0).
fn decimal_digits_n(number: u64) -> usize {
    let mut digits_n = 1;
    let mut rest = number / 10;
    while rest > 0 {
        digits_n += 1;
        rest /= 10;
    }
    digits_n
}

/// Appends the decimal digits of `number`.
fn write_decimal_digits(number: u64, out: &mut Vec<u8>) {
    let mut digits = DecimalDigits::new();
    digits.set(number);
    out.extend_from_slice(digits.as_bytes());
}

/// The decimal digits of a `u64`, in a buffer on the stack.
struct DecimalDigits {
    /// The digits, right-aligned.
    bytes: [u8; DECIMAL_DIGITS_MAX],
    /// Index of the first digit in `bytes`.
    start: usize,
}

/// Digits of the largest `u64`.
const DECIMAL_DIGITS_MAX: usize = 20;

impl DecimalDigits {
    fn new() -> DecimalDigits {
        DecimalDigits {
            bytes: [b'0'; DECIMAL_DIGITS_MAX],
            start: DECIMAL_DIGITS_MAX - 1,
        }
    }

    /// Holds the digits of `number` from now on.
    fn set(&mut self, mut number: u64) {
        let mut start = DECIMAL_DIGITS_MAX;
        loop {
            start -= 1;
            self.bytes[start] = b'0' + u8::try_from(number % 10).expect("a digit");
            number /= 10;
            if number == 0 {
                break;
            }
        }
        self.start = start;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Returns the shortest significand that reads back as the positive finite
/// `magnitude`, its number of digits, and the decimal exponent of its first
/// digit, from Rust's `{:e}` formatting (`d[.ddd]e[-]x`).
fn shortest_significand(magnitude: f64) -> (u64, u32, i32) {
    let mut text = NumberText::new();
    write!(text, "{magnitude:e}").expect("a double fits in the number buffer");
    let scientific = text.as_bytes();
    let exponent_marker = scientific
        .iter()
        .position(|&byte| byte == b'e')
        .expect("`{:e}` output has an exponent");
    let exponent = std::str::from_utf8(&scientific[exponent_marker + 1..])
        .expect("`{:e}` output is ASCII")
        .parse::<i32>()
        .expect("`{:e}` output has an integer exponent");
    let mut significand = 0u64;
    let mut digits_n = 0u32;
    for &byte in scientific[..exponent_marker]
        .iter()
        .filter(|byte| byte.is_ascii_digit())
    {
        significand = significand * 10 + u64::from(byte - b'0');
        digits_n += 1;
    }
    (significand, digits_n, exponent)
}

/// Tells whether the canonical form of `number` would be an integer literal
/// beyond ±(2^53−1): true for magnitudes from 2^53 up to (excluding) 1e21.
///
/// Such numbers are refused wherever they enter a fact, however they are
/// written: the integer in the canonical form would not be the number that
/// was sent (9007199254740993.0 would read 9007199254740992), and the
/// canonical form itself could not be sent again, since an integer literal
/// beyond ±(2^53−1) is refused. Refusing them keeps every canonical form
/// parseable, which verification of stored facts and replication rely on.
pub(crate) fn is_beyond_safe_integer_notation(number: f64) -> bool {
    let magnitude = number.abs();
    (PLAIN_INTEGER_MAGNITUDE_LIMIT..INTEGER_NOTATION_MAGNITUDE_LIMIT).contains(&magnitude)
}

/// Applies ECMAScript's tie rule to the shortest digits Rust found.
///
/// `magnitude` is written as `significand` (of `digits_n` digits) with its
/// first digit at decimal position `exponent`. When a neighbouring
/// significand with as many digits also reads back as `magnitude` and lies
/// exactly as close to it, ECMAScript picks the even one (RFC 8785 appendix
/// B: 1424953923781206.25 is written `1424953923781206.2`), where Rust's
/// shortest formatting rounds the tie up.
fn prefer_even_significand_on_tie(
    magnitude: f64,
    significand: u64,
    digits_n: u32,
    exponent: i32,
) -> u64 {
    if significand % 2 == 0 {
        return significand;
    }
    let digits_n_signed = i32::try_from(digits_n).expect("a double has at most 17 digits");
    // magnitude ≈ significand × 10^scale_exponent.
    let scale_exponent = exponent - (digits_n_signed - 1);
    let significand_min = 10u64.pow(digits_n - 1);
    let significand_limit = 10u64.pow(digits_n);
    for alternative in [significand - 1, significand + 1] {
        if alternative < significand_min || alternative >= significand_limit {
            continue;
        }
        // The midpoint (significand + alternative) / 2 × 10^scale_exponent,
        // written with one more digit so that it is an integer.
        let midpoint_significand = (significand + alternative) * 5;
        if is_exactly_decimal(magnitude, midpoint_significand, scale_exponent - 1)
            && reads_back_as(alternative, scale_exponent, magnitude)
        {
            return alternative;
        }
    }
    significand
}

/// Tells whether `significand × 10^exponent` reads back as `magnitude`.
fn reads_back_as(significand: u64, exponent: i32, magnitude: f64) -> bool {
    format!("{significand}e{exponent}").parse::<f64>() == Ok(magnitude)
}

/// Tells whether the positive finite double `magnitude` is exactly
/// `decimal_significand × 10^decimal_exponent`, using exact integer
/// arithmetic: both sides are split into an odd part and a power of two.
fn is_exactly_decimal(magnitude: f64, decimal_significand: u64, decimal_exponent: i32) -> bool {
    const MANTISSA_BITS: u32 = 52;
    const EXPONENT_BIAS_AND_MANTISSA_BITS: i32 = 1075;
    let bits = magnitude.to_bits();
    let biased_exponent = i32::try_from((bits >> MANTISSA_BITS) & 0x7ff).expect("11 bits");
    let fraction = bits & ((1 << MANTISSA_BITS) - 1);
    // magnitude = binary_significand × 2^binary_exponent.
    let (binary_significand, binary_exponent) = if biased_exponent == 0 {
        (fraction, 1 - EXPONENT_BIAS_AND_MANTISSA_BITS)
    } else {
        (
            fraction | (1 << MANTISSA_BITS),
            biased_exponent - EXPONENT_BIAS_AND_MANTISSA_BITS,
        )
    };
    if binary_significand == 0 || decimal_significand == 0 {
        return binary_significand == decimal_significand;
    }
    let binary_zeros = binary_significand.trailing_zeros();
    let binary_odd_part = u128::from(binary_significand >> binary_zeros);
    let binary_two_exponent = i64::from(binary_exponent) + i64::from(binary_zeros);
    let decimal_zeros = decimal_significand.trailing_zeros();
    let decimal_odd_part = u128::from(decimal_significand >> decimal_zeros);
    // 10^e = 5^e × 2^e, so the decimal side's power of two is zeros + e.
    let decimal_two_exponent = i64::from(decimal_zeros) + i64::from(decimal_exponent);
    if binary_two_exponent != decimal_two_exponent {
        return false;
    }
    let five_power = |power: u32| 5u128.checked_pow(power);
    // Compare the odd parts, moving 5^|e| to whichever side keeps it an integer.
    let (scaled_side, other_side) = if decimal_exponent >= 0 {
        let Some(power) = five_power(decimal_exponent.unsigned_abs()) else {
            return false;
        };
        (decimal_odd_part.checked_mul(power), binary_odd_part)
    } else {
        let Some(power) = five_power(decimal_exponent.unsigned_abs()) else {
            return false;
        };
        (binary_odd_part.checked_mul(power), decimal_odd_part)
    };
    scaled_side == Some(other_side)
}

/// Lays out the significant digits of a positive number the way ECMAScript's
/// Number::toString does, given its shortest significant `digits` (without
/// trailing zeros) and the decimal `exponent` of the first one.
fn write_ecmascript_layout(digits: &[u8], exponent: i32, out: &mut Vec<u8>) {
    let digits_n = digits.len();
    // ECMAScript's k (number of digits) and n (position of the decimal point
    // relative to the first digit): the value is 0.d1d2…dk × 10^n.
    let digit_count = i32::try_from(digits_n).expect("a double has at most 17 digits");
    let point_position = exponent + 1;

    if digit_count <= point_position && point_position <= FIXED_NOTATION_POINT_POSITION_MAX {
        out.extend_from_slice(digits);
        push_zeros(point_position - digit_count, out);
    } else if 0 < point_position && point_position <= FIXED_NOTATION_POINT_POSITION_MAX {
        let integer_digits_n = usize::try_from(point_position).expect("positive here");
        out.extend_from_slice(&digits[..integer_digits_n]);
        out.push(b'.');
        out.extend_from_slice(&digits[integer_digits_n..]);
    } else if FIXED_NOTATION_POINT_POSITION_MIN_EXCLUSIVE < point_position && point_position <= 0 {
        out.extend_from_slice(b"0.");
        push_zeros(-point_position, out);
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        write_decimal_digits(u64::from(exponent.unsigned_abs()), out);
    }
}

fn push_zeros(zeros_n: i32, out: &mut Vec<u8>) {
    for _ in 0..zeros_n {
        out.push(b'0');
    }
}

/// A small stack buffer to format a number into without allocating.
struct NumberText {
    bytes: [u8; NUMBER_TEXT_BYTES_MAX],
    bytes_n: usize,
}

impl NumberText {
    fn new() -> NumberText {
        NumberText {
            bytes: [0; NUMBER_TEXT_BYTES_MAX],
            bytes_n: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.bytes_n]
    }
}

impl fmt::Write for NumberText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.bytes_n + text.len();
        let destination = self.bytes.get_mut(self.bytes_n..end).ok_or(fmt::Error)?;
        destination.copy_from_slice(text.as_bytes());
        self.bytes_n = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(number: f64) -> String {
        let mut out = Vec::new();
        write_canonical_number(number, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_well_known_numbers_like_ecmascript() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (100.0, "100"),
            (4.5, "4.5"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.002, "0.002"),
            (0.000001, "0.000001"),
            (0.000001234, "0.000001234"),
            (1e-7, "1e-7"),
            (1.234e-7, "1.234e-7"),
            (123e-20, "1.23e-18"),
            (1e-27, "1e-27"),
            (5e-324, "5e-324"),
            (-5e-324, "-5e-324"),
            (1e20, "100000000000000000000"),
            (1.2345678901234568e20, "123456789012345680000"),
            (1e21, "1e+21"),
            (1e30, "1e+30"),
            (1.5e300, "1.5e+300"),
            (1e100, "1e+100"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            (9_007_199_254_740_992.0, "9007199254740992"),
            (-9_007_199_254_740_992.0, "-9007199254740992"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (333_333_333.333_333_3, "333333333.3333333"),
            (56.0, "56"),
            (123.456, "123.456"),
        ];
        for &(number, expected) in cases {
            assert_eq!(canonical(number), expected, "{number:e}");
        }
    }

    /// The sample numbers of RFC 8785, appendix B, given by their bits.
    #[test]
    fn writes_rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in cases {
            assert_eq!(canonical(f64::from_bits(bits)), expected, "{bits:016x}");
        }
    }

    /// Doubles in [2^50, 2^51) are spaced a quarter apart, so n + 0.25 lies
    /// exactly between the 17-digit candidates n.2 and n.3, both of which
    /// read back as it; ECMAScript picks the even digit.
    #[test]
    fn breaks_ties_between_shortest_candidates_towards_even() {
        let low = 2f64.powi(50);
        for step in 0..2_000u32 {
            let integer = low + f64::from(step) * 104_729.0;
            let quarter = canonical(integer + 0.25);
            let three_quarters = canonical(integer + 0.75);
            assert_eq!(quarter, format!("{}.2", integer as i64));
            assert_eq!(three_quarters, format!("{}.8", integer as i64));
        }
    }

    /// The general route alone: Rust's shortest digits, the tie rule and
    /// the layout, as written before the fast paths existed.
    fn general_route(number: f64) -> String {
        let mut out = Vec::new();
        if number < 0.0 {
            out.push(b'-');
        }
        let magnitude = number.abs();
        let (significand, digits_n, exponent) = shortest_significand(magnitude);
        let significand =
            prefer_even_significand_on_tie(magnitude, significand, digits_n, exponent);
        let digits = significand.to_string();
        write_ecmascript_layout(digits.trim_end_matches('0').as_bytes(), exponent, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fast_paths_agree_with_the_general_route() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut short_decimals_n = 0;
        for _ in 0..200_000 {
            let random = next();
            // Any double, short decimals of every size, and neighbours of
            // short decimals (which are not short themselves).
            let decimal = (random % 10u64.pow(1 + (random >> 59) as u32 % 16)) as f64
                / 10f64.powi(((random >> 32) % 25) as i32);
            for number in [
                f64::from_bits(random),
                decimal,
                f64::from_bits(decimal.to_bits() + 1),
                f64::from_bits(decimal.to_bits().saturating_sub(1)),
            ] {
                if !number.is_finite() || number == 0.0 || number.fract() == 0.0 {
                    continue;
                }
                if let Some((significand, exponent)) = short_decimal_digits(number.abs()) {
                    short_decimals_n += 1;
                    let mut out = Vec::new();
                    if number < 0.0 {
                        out.push(b'-');
                    }
                    write_ecmascript_layout(significand.to_string().as_bytes(), exponent, &mut out);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        general_route(number),
                        "{:x}",
                        number.to_bits()
                    );
                }
                assert_eq!(
                    canonical(number),
                    general_route(number),
                    "{:x}",
                    number.to_bits()
                );
            }
        }
        assert!(short_decimals_n > 50_000, "{short_decimals_n}");
    }

    #[test]
    fn recognizes_exact_decimals() {
        assert!(is_exactly_decimal(0.25, 25, -2));
        assert!(is_exactly_decimal(0.25, 250, -3));
        assert!(is_exactly_decimal(1e22, 1, 22));
        assert!(is_exactly_decimal(3.0, 3, 0));
        assert!(is_exactly_decimal(
            // 1424953923781206.25, which Rust literals cannot spell exactly.
            f64::from_bits(0x43143ff3c1cb0959),
            142_495_392_378_120_625,
            -2
        ));
        assert!(!is_exactly_decimal(0.1, 1, -1));
        assert!(!is_exactly_decimal(1e23, 1, 23));
        assert!(!is_exactly_decimal(3.0, 3, 1));
        assert!(!is_exactly_decimal(5e-324, 5, -324));
        assert!(!is_exactly_decimal(f64::MAX, 17_976_931_348_623_157, 292));
    }

    #[test]
    fn tells_which_numbers_would_be_written_as_unsafe_integers() {
        assert!(!is_beyond_safe_integer_notation(9_007_199_254_740_991.0));
        assert!(is_beyond_safe_integer_notation(9_007_199_254_740_992.0));
        assert!(is_beyond_safe_integer_notation(-9_007_199_254_740_992.0));
        assert!(is_beyond_safe_integer_notation(1e20));
        assert!(is_beyond_safe_integer_notation(
            999_999_999_999_999_900_000.0
        ));
        assert!(!is_beyond_safe_integer_notation(1e21));
        assert!(!is_beyond_safe_integer_notation(1e30));
        assert!(!is_beyond_safe_integer_notation(0.5));
        assert!(!is_beyond_safe_integer_notation(f64::NAN));
        assert_eq!(canonical(1e21), "1e+21");
        assert_eq!(canonical(1e20), "100000000000000000000");
    }

    #[test]
    fn writes_non_finite_numbers_as_null() {
        assert_eq!(canonical(f64::NAN), "null");
        assert_eq!(canonical(f64::INFINITY), "null");
        assert_eq!(canonical(f64::NEG_INFINITY), "null");
    }

    #[test]
    fn output_reads_back_to_the_same_double() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            // A fixed xorshift sequence covers all exponents without a dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let number = f64::from_bits(state);
            if !number.is_finite() || number == 0.0 {
                continue;
            }
            let text = canonical(number);
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                number.to_bits(),
                "{text}"
            );
        }
    }
}
