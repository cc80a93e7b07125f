//! The plain forms of values the direct decoder parses where they lie: integers, decimals
//! as scaled integers, and ISO times as seconds. Anything else is declined (`None`) and left
//! to arrow's own parsers.

/// The run of ASCII digits from `i` on, appended to `v` (wrapping past 19 digits: callers
/// count them), and where the run ends.
#[inline]
pub(super) fn digit_run(b: &[u8], mut i: usize, mut v: u64) -> (u64, usize) {
    while let Some(&c) = b.get(i) {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(digit));
        i += 1;
    }
    (v, i)
}

/// `-?[0-9]{1,18}` at `pos`: the value and where it ends.
#[inline]
pub(super) fn fast_int(b: &[u8], pos: usize) -> Option<(i64, usize)> {
    let neg = b.get(pos) == Some(&b'-');
    let start = pos + usize::from(neg);
    let (v, end) = digit_run(b, start, 0);
    // 18 digits always fit an i64.
    let v = i64::try_from(v).ok().filter(|_| (1..=18).contains(&(end - start)))?;
    Some((if neg { -v } else { v }, end))
}

/// `-?[0-9]+(\.[0-9]+)?` with at most 19 digits at `pos`: the sign, the digits as an integer
/// and the number of digits after the point (trailing zeros dropped), and where it ends.
#[inline]
pub(super) fn fast_decimal(b: &[u8], pos: usize) -> Option<(bool, u64, u32, usize)> {
    let neg = b.get(pos) == Some(&b'-');
    let start = pos + usize::from(neg);
    let (mut v, mut i) = digit_run(b, start, 0);
    let whole = i - start;
    if whole == 0 {
        return None;
    }
    let mut scale = 0u32;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        (v, i) = digit_run(b, frac_start, v);
        scale = u32::try_from(i - frac_start).ok()?;
        if scale == 0 {
            return None;
        }
    }
    // Up to 19 digits the value did not wrap.
    if whole + scale as usize > 19 {
        return None;
    }
    while scale > 0 && v.is_multiple_of(10) {
        v /= 10;
        scale -= 1;
    }
    Some((neg, v, scale, i))
}

#[inline]
pub(super) fn two(b: &[u8], i: usize) -> Option<u32> {
    let (x, y) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (x <= 9 && y <= 9).then(|| u32::from(x) * 10 + u32::from(y))
}

/// `YYYY-MM-DD` or `YYYY-MM-DD[ T]hh:mm:ss` at `pos`, a valid date and time read as UTC (as
/// arrow-csv reads a time without a zone): seconds since the epoch, and where it ends.
#[inline]
pub(super) fn fast_time(b: &[u8], pos: usize) -> Option<(i64, usize)> {
    let t = b.get(pos..pos + 10)?;
    if t[4] != b'-' || t[7] != b'-' {
        return None;
    }
    let year = two(t, 0)? * 100 + two(t, 2)?;
    let (month, day) = (two(t, 5)?, two(t, 8)?);
    if !(1000..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let rest = b.get(pos + 10..pos + 19).filter(|r| matches!(r[0], b' ' | b'T') && r[3] == b':' && r[6] == b':');
    let Some(r) = rest else {
        return Some((days * 86_400, pos + 10));
    };
    let (h, m, s) = (two(r, 1)?, two(r, 4)?, two(r, 7)?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some((days * 86_400 + i64::from(h * 3600 + m * 60 + s), pos + 19))
}

pub(super) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
