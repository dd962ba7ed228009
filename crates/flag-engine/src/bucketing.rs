//! Deterministic bucketing shared by fractional rollouts and experiment assignment.
//!
//! flagd's bucketing v2: hash the UTF-8 bucketing key with MurmurHash3 x86 32-bit (seed 0) and
//! map the hash onto `[0, total_weight)` with `(hash * total_weight) >> 32`. The multiply-shift
//! keeps every bucket's share exact to within one part in 2^32, unlike the older percentage
//! arithmetic, and costs one multiplication.

/// MurmurHash3, x86 32-bit variant.
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    let mut hash = seed;
    let mut blocks = bytes.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        hash ^= mix(k, C1, C2);
        hash = hash.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, &byte| (k << 8) | u32::from(byte));
        hash ^= mix(k, C1, C2);
    }

    // `usize` to `u32` truncation is what the reference does with lengths ≥ 4 GiB.
    hash ^= bytes.len() as u32;
    finalize(hash)
}

fn mix(k: u32, c1: u32, c2: u32) -> u32 {
    k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2)
}

fn finalize(mut hash: u32) -> u32 {
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

/// The point in `[0, total_weight)` that `key` falls on.
pub fn bucket_point(key: &str, total_weight: u64) -> u64 {
    let point = (u128::from(murmur3_x86_32(key.as_bytes(), 0)) * u128::from(total_weight)) >> 32;
    // The hash is below 2^32, so the point is below `total_weight` and fits.
    point as u64
}

/// Index of the weighted bucket `key` falls into, or `None` when every weight is zero.
///
/// Buckets cover consecutive ranges in the order given, each as wide as its weight.
pub fn pick(key: &str, weights: &[u64]) -> Option<usize> {
    pick_bytes(key.as_bytes(), weights)
}

/// [`pick`] for a key given as UTF-8 bytes.
pub fn pick_bytes(key: &[u8], weights: &[u64]) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let point = ((u128::from(murmur3_x86_32(key, 0)) * u128::from(total)) >> 32) as u64;
    let mut end = 0;
    weights.iter().position(|&weight| {
        end += weight;
        point < end
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference vectors of MurmurHash3 x86_32 (seed 0 unless stated).
    #[test]
    fn matches_reference_vectors() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 0), 0xc036_3e43);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65, 0x87], 0), 0xf55b_516b);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65], 0), 0x7e4a_8634);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43], 0), 0xa0f7_b07a);
        assert_eq!(murmur3_x86_32(&[0x21], 0), 0x7266_1cf4);
    }

    #[test]
    fn every_point_lands_in_a_bucket_and_zero_weights_are_skipped() {
        for key in ["a", "b", "user-1", "user-2", "ümlaut", ""] {
            let chosen = pick(key, &[0, 3, 0, 7]);
            assert!(matches!(chosen, Some(1) | Some(3)), "{key}: {chosen:?}");
        }
        assert_eq!(pick("anyone", &[0, 0]), None);
        assert_eq!(pick("anyone", &[1]), Some(0));
    }

    #[test]
    fn shares_follow_weights() {
        let mut counts = [0u32; 2];
        for i in 0..20_000 {
            if let Some(index) = pick(&format!("user-{i}"), &[25, 75]) {
                counts[index] += 1;
            }
        }
        let share = f64::from(counts[0]) / 20_000.0;
        assert!((share - 0.25).abs() < 0.02, "share of the 25% bucket: {share}");
    }
}
