//! Nova's user-data limit: 65535 base64 characters, so 49,149 raw bytes
//! (nova/api/openstack/compute/schemas/servers.py). cloud-init decompresses
//! gzip user-data itself (cloudinit/user_data.py), so a document that is too
//! large is gzipped; one that is still too large is an error.

use super::RenderError;
use crate::model::Phase;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

pub const NOVA_USER_DATA_LIMIT: usize = 65535;
pub const NOVA_USER_DATA_RAW_LIMIT: usize = NOVA_USER_DATA_LIMIT / 4 * 3;

pub fn fit(phase: Phase, text: &[u8]) -> Result<(Vec<u8>, bool), RenderError> {
    fit_within(phase, text, NOVA_USER_DATA_RAW_LIMIT)
}

fn fit_within(phase: Phase, text: &[u8], limit: usize) -> Result<(Vec<u8>, bool), RenderError> {
    if text.len() <= limit {
        return Ok((text.to_vec(), false));
    }
    let gz = gzip(text);
    if gz.len() <= limit {
        return Ok((gz, true));
    }
    Err(RenderError::TooLarge {
        phase,
        raw: text.len(),
        gzipped: gz.len(),
        limit,
    })
}

/// Deterministic gzip: flate2 writes mtime 0 and no file name by default.
/// The default level: `best` took 5 ms more on the Jitsi bake (74 kB) for
/// 25 bytes less.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_novas() {
        assert_eq!(NOVA_USER_DATA_RAW_LIMIT, 49149);
    }

    #[test]
    fn small_documents_stay_plain() {
        let (bytes, gz) = fit(Phase::Boot, b"#cloud-config\n").unwrap();
        assert!(!gz);
        assert_eq!(bytes, b"#cloud-config\n");
    }

    #[test]
    fn large_documents_are_gzipped_deterministically() {
        let text = "#cloud-config\n".to_string() + &"runcmd: [echo hello]\n".repeat(5000);
        let (a, gz) = fit(Phase::Boot, text.as_bytes()).unwrap();
        assert!(gz);
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        assert_eq!(a, fit(Phase::Boot, text.as_bytes()).unwrap().0);
    }

    #[test]
    fn incompressible_documents_fail_with_sizes() {
        // A xorshift stream: deterministic and incompressible.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let noise: Vec<u8> = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let err = fit_within(Phase::Boot, &noise, 100).unwrap_err();
        match &err {
            RenderError::TooLarge {
                raw: 200,
                limit: 100,
                gzipped,
                ..
            } => assert!(*gzipped > 100),
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("the boot user-data is 200 bytes, "));
    }
}
