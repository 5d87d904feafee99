//! Unit tests of the HLL codec, with expectations taken from redis-server 7.0.15.

use super::*;

fn add_all(s: &mut Vec<u8>, items: impl IntoIterator<Item = String>) -> u32 {
    let mut changed = 0;
    for e in items {
        if add(s, e.as_bytes(), SPARSE_MAX_BYTES).unwrap() {
            changed += 1;
        }
    }
    changed
}

fn count(s: &[u8]) -> u64 {
    estimate(&histogram(s).unwrap())
}

#[test]
fn three_elements_match_redis_bytes() {
    let mut s = new_sparse();
    assert_eq!(&s[..], b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
    add_all(&mut s, ["a", "b", "c"].map(String::from));
    let want: &[u8] = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ";
    assert_eq!(&s[..], want);
    assert_eq!(decode(&s), "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603");
    assert_eq!(cached(&s), None);
    let c = count(&s);
    assert_eq!(c, 3);
    set_cached(&mut s, c);
    assert_eq!(&s[8..16], &[3, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(cached(&s), Some(3));
}

#[test]
fn counts_match_redis_across_promotion() {
    let mut s = new_sparse();
    add_all(&mut s, (0..200).map(|j| format!("e{j}")));
    assert!(is_sparse(&s));
    assert_eq!(s.len(), 513);
    assert_eq!(count(&s), 200);
    add_all(&mut s, (200..10_000).map(|j| format!("e{j}")));
    assert!(!is_sparse(&s));
    assert_eq!(s.len(), DENSE_SIZE);
    assert_eq!(count(&s), 9973);
}

#[test]
fn sparse_and_dense_agree_register_by_register() {
    let mut sparse = new_sparse();
    let mut dense = dense_of(&new_sparse()).unwrap();
    for j in 0..1500 {
        let e = format!("x{j}");
        assert_eq!(
            add(&mut sparse, e.as_bytes(), usize::MAX).unwrap(),
            add(&mut dense, e.as_bytes(), usize::MAX).unwrap(),
            "#{j}"
        );
    }
    let mut a = [0u8; REGISTERS];
    let mut b = [0u8; REGISTERS];
    merge_into(&mut a, &sparse).unwrap();
    merge_into(&mut b, &dense).unwrap();
    assert!(a == b);
    assert_eq!(count(&sparse), count(&dense));
    assert_eq!(estimate(&raw_histogram(&a)), count(&dense));
    let mut boxed = sparse.into_boxed_slice();
    to_dense(&mut boxed).unwrap();
    assert_eq!(&boxed[HDR..], &dense[HDR..]);
}

#[test]
fn empty_counts_zero_and_self_test_passes() {
    assert_eq!(count(&new_sparse()), 0);
    self_test().unwrap();
}

#[test]
fn header_checks() {
    assert!(is_hll(&new_sparse()));
    assert!(!is_hll(b"HYLL"));
    assert!(!is_hll(b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
    assert!(!is_hll(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
    assert!(!is_hll(b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
}

/// Corrupt sparse data of every shape: never a panic, and inconsistent runs are reported.
#[test]
fn corrupt_sparse_never_panics() {
    let mut seed: u64 = 42;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3000 {
        let mut s = new_sparse();
        let n = (next() % 40) as usize;
        s.truncate(HDR);
        for _ in 0..n {
            s.push(next() as u8);
        }
        let _ = histogram(&s);
        let _ = decode(&s);
        let mut m = [0u8; REGISTERS];
        let _ = merge_into(&mut m, &s);
        for k in 0..5 {
            let _ = add(&mut s, format!("{round}-{k}").as_bytes(), 40);
        }
        let mut b = s.into_boxed_slice();
        let _ = to_dense(&mut b);
    }
    // Runs that cover too few registers.
    let mut short = new_sparse();
    short[HDR] = 0x40;
    assert_eq!(histogram(&short), Err(Corrupt));
    let mut b = short.into_boxed_slice();
    assert_eq!(to_dense(&mut b), Err(Corrupt));
}

#[test]
fn hashes_choose_redis_registers() {
    // PFDEBUG DECODE in Redis after PFADD a b c: runs of 1, 2, 1 at these registers.
    let mut got: Vec<(usize, u8)> = [&b"a"[..], b"b", b"c"].map(pattern).to_vec();
    got.sort();
    let regs: Vec<usize> = got.iter().map(|g| g.0).collect();
    assert_eq!(regs, [8436, 12711, 15780]);
    let runs: Vec<u8> = got.iter().map(|g| g.1).collect();
    assert_eq!(runs, [1, 2, 1]);
}
