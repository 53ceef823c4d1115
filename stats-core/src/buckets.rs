//! The fixed log-linear bucket layout every histogram shares, so histograms
//! from different processes merge by adding bucket counts.
//!
//! Each power of two is split into [`SUB_BUCKETS`] equal parts, read straight
//! off a float's exponent and top mantissa bits (no logarithm on the hot
//! path). A bucket holds the values in `(lower, upper]`, matching
//! Prometheus's `le` ("less than or equal") buckets. Magnitudes from
//! 2^[`MIN_EXPONENT`] to 2^([`MAX_EXPONENT`]+1) get their own buckets;
//! smaller ones (down to zero, either sign) share the zero bucket, larger
//! ones fall into an overflow bucket whose bound is infinite.
//!
//! Worst relative error of a quantile estimate: a bucket `(lo, hi]` spans at
//! most 1/4 of `lo`, and the estimate is `2·lo·hi/(lo+hi)`, the point
//! equally far (relatively) from both ends, clamped to the exact min and
//! max; so it is within `(hi-lo)/(hi+lo)` ≤ 1/9 (11.1 %) of the true value.
//! The lowest and highest quantiles (rank 1 and rank `count`) are the exact
//! min and max.

/// Sub-buckets per power of two.
pub const SUB_BUCKETS: usize = 4;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Smallest power of two with buckets of its own (2^-40 ≈ 9.1e-13).
pub const MIN_EXPONENT: i32 = -40;
/// Largest power of two with buckets of its own (values up to 2^64).
pub const MAX_EXPONENT: i32 = 63;
/// Buckets on one side of zero, the last one being the overflow bucket.
pub const PER_SIDE: usize = (MAX_EXPONENT - MIN_EXPONENT + 1) as usize * SUB_BUCKETS + 1;
/// Total buckets: negative side, zero, positive side.
pub const BUCKETS: usize = 2 * PER_SIDE + 1;
/// Index of the bucket that holds exactly zero.
pub const ZERO: usize = PER_SIDE;

const MANTISSA_BITS: u32 = 52;
const KEY_SHIFT: u32 = MANTISSA_BITS - SUB_BITS;
const MIN_KEY: u64 = ((MIN_EXPONENT + 1023) as u64) << SUB_BITS;
/// The bits of 2^MIN_EXPONENT: smaller magnitudes go to the zero bucket.
const MIN_BITS: u64 = ((MIN_EXPONENT + 1023) as u64) << MANTISSA_BITS;

/// Position of a magnitude's bucket on its side of zero (0 = nearest zero).
#[inline]
fn side_position(key: u64) -> usize {
    let position = key.saturating_sub(MIN_KEY) as usize;
    if position < PER_SIDE {
        position
    } else {
        PER_SIDE - 1
    }
}

/// The bucket index of `value`; NaN must be handled by the caller.
#[inline]
pub fn index(value: f64) -> usize {
    let magnitude = value.to_bits() & !(1 << 63);
    if value > 0.0 && magnitude > MIN_BITS {
        // `magnitude - 1` moves an exact bucket boundary into the bucket
        // below, so buckets are (lower, upper].
        ZERO + 1 + side_position((magnitude - 1) >> KEY_SHIFT)
    } else if value < 0.0 && magnitude >= MIN_BITS {
        // Mirrored: (-upper, -lower] is [lower, upper) in magnitude.
        ZERO - 1 - side_position(magnitude >> KEY_SHIFT)
    } else {
        ZERO
    }
}

/// The magnitude bounds `[lower, upper)` of a bucket at `position` on one side.
fn magnitude_bounds(position: usize) -> (f64, f64) {
    if position == PER_SIDE - 1 {
        return (2f64.powi(MAX_EXPONENT + 1), f64::INFINITY);
    }
    let octave = MIN_EXPONENT + (position / SUB_BUCKETS) as i32;
    let sub = (position % SUB_BUCKETS) as f64;
    let base = 2f64.powi(octave);
    let width = base / SUB_BUCKETS as f64;
    (base + sub * width, base + (sub + 1.0) * width)
}

/// The bucket's value range `(lower, upper]` (for negatives `(lower, upper]`
/// too: the range is mirrored, so it is really `[lower, upper)` in
/// magnitude, which only matters for values exactly on a bound).
pub fn bounds(index: usize) -> (f64, f64) {
    match index.cmp(&ZERO) {
        std::cmp::Ordering::Equal => {
            let smallest = 2f64.powi(MIN_EXPONENT);
            (-smallest, smallest)
        }
        std::cmp::Ordering::Greater => magnitude_bounds(index - ZERO - 1),
        std::cmp::Ordering::Less => {
            let (lower, upper) = magnitude_bounds(ZERO - 1 - index);
            (-upper, -lower)
        }
    }
}

/// The upper bound of a bucket: the `le` of a Prometheus bucket.
pub fn upper_bound(index: usize) -> f64 {
    bounds(index).1
}

/// The bucket whose upper bound is exactly `le`, if any (used when reading
/// buckets back from a pipe).
pub fn index_of_upper_bound(le: f64) -> Option<usize> {
    if le.is_nan() {
        return None;
    }
    // An upper bound belongs to its own bucket: buckets are (lower, upper].
    let candidate = if le == f64::INFINITY {
        BUCKETS - 1
    } else {
        index(le)
    };
    (candidate < BUCKETS && upper_bound(candidate) == le).then_some(candidate)
}

/// A representative value for a bucket, clamped to `[min, max]`: the point
/// relatively equidistant from both bounds (see the module doc); 0 for the
/// zero bucket; the exact extremes for the overflow buckets.
pub fn estimate(index: usize, min: f64, max: f64) -> f64 {
    let (lower, upper) = bounds(index);
    let middle = if index == ZERO {
        0.0
    } else if upper.is_infinite() {
        max
    } else if lower.is_infinite() {
        min
    } else {
        2.0 * lower * upper / (lower + upper)
    };
    middle.clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lies_in_its_bucket() {
        let mut value = 1e-12;
        while value < 1e18 {
            for v in [value, -value] {
                let i = index(v);
                let (lower, upper) = bounds(i);
                assert!(lower < v && v <= upper, "{v} in {i}: ({lower}, {upper}]");
            }
            value *= 1.0137;
        }
    }

    #[test]
    fn boundaries_belong_to_the_lower_bucket() {
        assert_eq!(upper_bound(index(1.0)), 1.0);
        assert_eq!(upper_bound(index(1.25)), 1.25);
        assert_eq!(bounds(index(1.2500001)).0, 1.25);
        assert_eq!(index(0.0), ZERO);
        assert_eq!(index(-0.0), ZERO);
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        assert_eq!(index(f64::MIN_POSITIVE), ZERO);
        assert_eq!(index(-1e-300), ZERO);
        assert_eq!(index(2f64.powi(MIN_EXPONENT)), ZERO);
        assert_eq!(index(2f64.powi(MIN_EXPONENT) * 1.01), ZERO + 1);
        assert_eq!(index(1e300), BUCKETS - 1);
        assert_eq!(index(f64::INFINITY), BUCKETS - 1);
        assert_eq!(index(f64::NEG_INFINITY), 0);
        assert_eq!(upper_bound(BUCKETS - 1), f64::INFINITY);
    }

    #[test]
    fn upper_bounds_map_back_to_their_bucket() {
        for i in 0..BUCKETS {
            assert_eq!(index_of_upper_bound(upper_bound(i)), Some(i), "bucket {i}");
        }
        assert_eq!(index_of_upper_bound(1.1), None);
    }

    #[test]
    fn estimates_are_within_the_documented_error() {
        let mut value = 1e-9;
        while value < 1e15 {
            let e = estimate(index(value), 0.0, f64::MAX);
            assert!(
                ((e - value) / value).abs() <= 1.0 / 9.0 + 1e-12,
                "{value} -> {e}"
            );
            value *= 1.07;
        }
    }
}
