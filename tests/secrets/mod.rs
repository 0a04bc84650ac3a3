//! Planted secrets for the PII corpora (tests/pii.rs, tests/hostile_corpus.rs):
//! one of each kind RedactPII knows, from a deterministic generator so a
//! failure names a reproducible case.

/// A deterministic generator, so a failure names a reproducible case.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + (self.next() % 10) as u8)).collect()
    }
    pub fn alnum(&mut self, n: usize) -> String {
        const SET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        (0..n).map(|_| SET[(self.next() % SET.len() as u64) as usize] as char).collect()
    }
}

fn luhn_card(rng: &mut Rng) -> String {
    let mut digits: Vec<u32> = "4".chars().chain(rng.digits(14).chars()).filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from_digit(*d, 10).unwrap_or('0')).collect()
}

/// One secret of each kind; the second value is what must not appear.
pub fn secret(kind: usize, i: usize, rng: &mut Rng) -> String {
    match kind % 9 {
        0 => format!("user{i}.{}@corp{i}.example.com", rng.alnum(5).to_lowercase()),
        1 => format!("{}-{}-{}", 100 + (rng.next() % 500), 10 + rng.next() % 89, 1000 + rng.next() % 8999),
        2 => luhn_card(rng),
        3 => format!("+1 ({}) {}-{}", 200 + rng.next() % 700, 200 + rng.next() % 700, rng.digits(4)),
        4 => format!("10.{}.{}.{}", rng.next() % 255, rng.next() % 255, 1 + rng.next() % 254),
        5 => format!("2001:db8:{:x}:{:x}::{:x}", rng.next() % 65535, rng.next() % 65535, 1 + rng.next() % 65534),
        6 => format!("eyJ{}.eyJ{}.{}", rng.alnum(20), rng.alnum(30), rng.alnum(40)),
        7 => format!("sk_live_{}", rng.alnum(24)),
        _ => format!("pw{i}{}", rng.alnum(12)),
    }
}
