//! Devnet wallets: keys (real secp256k1, regtest addresses), a balance in base
//! units (1 EMC = 1 000 000), and the names the wallet has held.

use std::collections::BTreeSet;

use ness_core::emercoin::{Address, Network, PrivateKey};
use serde::{Deserialize, Serialize};

pub const COIN: i64 = 1_000_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WalletKey {
    /// WIF (testnet/regtest version 239).
    pub wif: String,
    pub address: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Wallet {
    pub keys: Vec<WalletKey>,
    pub balance: i64,
    /// Names (hex) this wallet has owned at some time, for name_list's "transferred".
    pub held: BTreeSet<String>,
}

impl Wallet {
    /// A fresh key: bech32 P2WPKH by default, P2PKH when `legacy`.
    pub fn new_address(&mut self, legacy: bool) -> String {
        let key = PrivateKey::generate();
        let address = if legacy {
            key.p2pkh_address(Network::Regtest)
        } else {
            key.p2wpkh_address(Network::Regtest).expect("generated keys are compressed")
        }
        .to_string();
        self.keys.push(WalletKey { wif: key.to_wif(Network::Regtest), address: address.clone() });
        address
    }

    pub fn owns(&self, address: &str) -> bool {
        self.keys.iter().any(|k| k.address == address)
    }

    /// The key for an address of this wallet, compared by key hash so that the P2PKH
    /// and P2WPKH forms of one key both work.
    pub fn key_for(&self, address: &Address) -> Option<PrivateKey> {
        self.keys.iter().find_map(|k| {
            let (key, _) = PrivateKey::from_wif(&k.wif).ok()?;
            (key.key_hash() == address.hash).then_some(key)
        })
    }
}
