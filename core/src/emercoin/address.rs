//! Emercoin addresses: base58check P2PKH (`E…` on mainnet, `m…`/`n…` on test
//! networks) and bech32 P2WPKH (`em1q…`, `te1q…`, `emrt1q…`).
//!
//! A verifier's key is identified by the 20-byte key hash inside its address, whatever
//! the encoding; that is what a recovered signature key is compared with.

use std::fmt;
use std::str::FromStr;

use bech32::{Fe32, Hrp, segwit};

/// The Emercoin network an address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    Main,
    Test,
    Regtest,
}

impl Network {
    /// Version byte of P2PKH addresses (33 on mainnet, 111 on test networks).
    pub fn p2pkh_version(self) -> u8 {
        match self {
            Network::Main => 33,
            Network::Test | Network::Regtest => 111,
        }
    }

    /// Version byte of P2SH addresses (92 on mainnet, 196 on test networks).
    pub fn p2sh_version(self) -> u8 {
        match self {
            Network::Main => 92,
            Network::Test | Network::Regtest => 196,
        }
    }

    /// Version byte of WIF private keys (128 on mainnet, 239 on test networks).
    pub fn wif_version(self) -> u8 {
        match self {
            Network::Main => 128,
            Network::Test | Network::Regtest => 239,
        }
    }

    /// Human-readable part of bech32 addresses.
    pub fn bech32_hrp(self) -> &'static str {
        match self {
            Network::Main => "em",
            Network::Test => "te",
            Network::Regtest => "emrt",
        }
    }

    /// Name as used by emercoind (`getblockchaininfo` → `chain`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Regtest => "regtest",
        }
    }

    /// Sub-directory of the data dir holding this network's files (`.cookie`).
    pub fn data_subdir(self) -> &'static str {
        match self {
            Network::Main => "",
            Network::Test => "testnet3",
            Network::Regtest => "regtest",
        }
    }
}

impl FromStr for Network {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" => Ok(Network::Main),
            "test" | "testnet" => Ok(Network::Test),
            "regtest" => Ok(Network::Regtest),
            other => Err(AddressError::UnknownNetwork(other.to_string())),
        }
    }
}

/// What kind of output script an address stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// Pay to public key hash (base58check).
    P2pkh,
    /// Pay to script hash (base58check); cannot sign messages.
    P2sh,
    /// Pay to witness public key hash, segwit v0 (bech32).
    P2wpkh,
}

/// A decoded Emercoin address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub network: Network,
    pub kind: AddressKind,
    /// The 20-byte hash in the address (key hash, or script hash for P2SH).
    pub hash: [u8; 20],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("'{0}' is not an Emercoin address (neither base58check nor bech32)")]
    Unparseable(String),
    #[error("address '{address}' has version byte {version}, which is not an Emercoin address version")]
    UnknownVersion { address: String, version: u8 },
    #[error("address '{address}' has bech32 prefix '{hrp}', expected em, te or emrt")]
    UnknownHrp { address: String, hrp: String },
    #[error("address '{0}' is a segwit address but not a 20-byte v0 key hash (P2WPKH)")]
    UnsupportedWitness(String),
    #[error("unknown network '{0}' (expected main, test or regtest)")]
    UnknownNetwork(String),
}

impl Address {
    pub fn p2pkh(network: Network, hash: [u8; 20]) -> Self {
        Address { network, kind: AddressKind::P2pkh, hash }
    }

    pub fn p2wpkh(network: Network, hash: [u8; 20]) -> Self {
        Address { network, kind: AddressKind::P2wpkh, hash }
    }

    /// Parse any Emercoin address. Testnet and regtest share base58 versions; such
    /// addresses are reported as [`Network::Test`] unless `hint` says regtest.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        Self::parse_with_hint(s, None)
    }

    pub fn parse_with_hint(s: &str, hint: Option<Network>) -> Result<Self, AddressError> {
        let s = s.trim();
        if let Some(raw) = super::base58check_decode(s) {
            if raw.len() != 21 {
                return Err(AddressError::Unparseable(s.to_string()));
            }
            let mut hash = [0u8; 20];
            hash.copy_from_slice(&raw[1..]);
            let test = if hint == Some(Network::Regtest) { Network::Regtest } else { Network::Test };
            let (network, kind) = match raw[0] {
                33 => (Network::Main, AddressKind::P2pkh),
                92 => (Network::Main, AddressKind::P2sh),
                111 => (test, AddressKind::P2pkh),
                196 => (test, AddressKind::P2sh),
                version => {
                    return Err(AddressError::UnknownVersion { address: s.to_string(), version });
                }
            };
            return Ok(Address { network, kind, hash });
        }
        match segwit::decode(s) {
            Ok((hrp, version, program)) => {
                let network = match hrp.to_lowercase().as_str() {
                    "em" => Network::Main,
                    "te" => Network::Test,
                    "emrt" => Network::Regtest,
                    other => {
                        return Err(AddressError::UnknownHrp {
                            address: s.to_string(),
                            hrp: other.to_string(),
                        });
                    }
                };
                if version != Fe32::Q || program.len() != 20 {
                    return Err(AddressError::UnsupportedWitness(s.to_string()));
                }
                let mut hash = [0u8; 20];
                hash.copy_from_slice(&program);
                Ok(Address::p2wpkh(network, hash))
            }
            Err(_) => Err(AddressError::Unparseable(s.to_string())),
        }
    }

    /// True if a key with this hash160 may sign for the address (P2PKH and P2WPKH).
    pub fn is_signed_by(&self, key_hash: &[u8; 20]) -> bool {
        self.kind != AddressKind::P2sh && &self.hash == key_hash
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            AddressKind::P2pkh | AddressKind::P2sh => {
                let version = if self.kind == AddressKind::P2pkh {
                    self.network.p2pkh_version()
                } else {
                    self.network.p2sh_version()
                };
                let mut raw = Vec::with_capacity(21);
                raw.push(version);
                raw.extend_from_slice(&self.hash);
                f.write_str(&super::base58check_encode(&raw))
            }
            AddressKind::P2wpkh => {
                let hrp = Hrp::parse(self.network.bech32_hrp()).map_err(|_| fmt::Error)?;
                let s = segwit::encode_v0(hrp, &self.hash).map_err(|_| fmt::Error)?;
                f.write_str(&s)
            }
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captured_regtest_addresses() {
        // From fixtures validateaddress.bech32.ok.json / validateaddress.legacy.ok.json.
        let bech = Address::parse("emrt1qwdlxm5pycuhaaqq0zfsth5fh7832gh3907mz5c").unwrap();
        assert_eq!(bech.kind, AddressKind::P2wpkh);
        assert_eq!(bech.network, Network::Regtest);
        assert_eq!(hex::encode(bech.hash), "737e6dd024c72fde800f1260bbd137f1e2a45e25");
        assert_eq!(bech.to_string(), "emrt1qwdlxm5pycuhaaqq0zfsth5fh7832gh3907mz5c");

        let legacy = Address::parse("mzvq55PeGkczzpLXPBuQNSxDEq4UC595pR").unwrap();
        assert_eq!(legacy.kind, AddressKind::P2pkh);
        assert_eq!(hex::encode(legacy.hash), "d4ee57c7c15fe93427161aeab902ff55144de902");
        assert_eq!(legacy.to_string(), "mzvq55PeGkczzpLXPBuQNSxDEq4UC595pR");
    }

    #[test]
    fn mainnet_p2pkh_starts_with_e() {
        let a = Address::p2pkh(Network::Main, [7u8; 20]);
        let s = a.to_string();
        assert!(s.starts_with('E'), "{s}");
        assert_eq!(Address::parse(&s).unwrap(), a);
        let w = Address::p2wpkh(Network::Main, [7u8; 20]).to_string();
        assert!(w.starts_with("em1q"), "{w}");
    }

    #[test]
    fn rejects_garbage_and_foreign_addresses() {
        assert!(matches!(Address::parse("notanaddress"), Err(AddressError::Unparseable(_))));
        // A Bitcoin mainnet address (version 0).
        assert!(matches!(
            Address::parse("1BoatSLRHtKNngkdXEeobR76b53LETtpyT"),
            Err(AddressError::UnknownVersion { version: 0, .. })
        ));
        // A Bitcoin bech32 address.
        assert!(matches!(
            Address::parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            Err(AddressError::UnknownHrp { .. })
        ));
    }
}
