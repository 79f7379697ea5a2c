//! Emercoin chain primitives the suite needs without a node: addresses (P2PKH and
//! P2WPKH on mainnet, testnet and regtest), private keys (WIF), and the
//! "EmerCoin Signed Message" signatures that ENUMER verifiers put in `SIG=` lines.
//!
//! Everything here is pure computation; nothing talks to the network.

mod address;
mod key;
mod message;

pub use address::{Address, AddressError, AddressKind, Network};
pub use key::{KeyError, PrivateKey};
pub use message::{MessageSignature, SignatureError, message_hash};

/// RIPEMD160(SHA256(data)), the 20-byte hash every P2PKH/P2WPKH address commits to.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    use ripemd::Ripemd160;
    use sha2::{Digest, Sha256};
    let sha = Sha256::digest(data);
    let mut out = [0u8; 20];
    out.copy_from_slice(&Ripemd160::digest(sha));
    out
}

/// SHA256(SHA256(data)), Bitcoin's hash for messages and checksums.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(Sha256::digest(data)));
    out
}

/// Base58Check: base58 of `raw` followed by the first four bytes of its [`sha256d`].
/// (bs58's own `check` feature would bring a second version of sha2.)
pub fn base58check_encode(raw: &[u8]) -> String {
    let mut with_sum = raw.to_vec();
    with_sum.extend_from_slice(&sha256d(raw)[..4]);
    bs58::encode(with_sum).into_string()
}

/// The payload of a Base58Check string, or `None` if it is not base58 or the
/// checksum is wrong.
pub fn base58check_decode(s: &str) -> Option<Vec<u8>> {
    let mut raw = bs58::decode(s).into_vec().ok()?;
    if raw.len() < 4 {
        return None;
    }
    let sum = raw.split_off(raw.len() - 4);
    (sha256d(&raw)[..4] == sum[..]).then_some(raw)
}
