//! Devnet wallets: keys (real secp256k1, regtest addresses), a balance in base
//! units (1 EMC = 1 000 000), and the names the wallet has held.

use std::collections::{BTreeSet, HashMap};

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
    /// Positions in `keys` by address and by key hash (rebuilt by [`Wallet::reindex`]
    /// after loading): a benchmark wallet holds 100 000 keys, one per name.
    #[serde(skip)]
    by_address: HashMap<String, usize>,
    #[serde(skip)]
    by_hash: HashMap<[u8; 20], usize>,
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
        self.by_address.insert(address.clone(), self.keys.len());
        self.by_hash.insert(key.key_hash(), self.keys.len());
        self.keys.push(WalletKey { wif: key.to_wif(Network::Regtest), address: address.clone() });
        address
    }

    /// Rebuild the indexes from `keys` (after deserialising).
    pub fn reindex(&mut self) {
        self.by_address.clear();
        self.by_hash.clear();
        for (i, k) in self.keys.iter().enumerate() {
            self.by_address.insert(k.address.clone(), i);
            if let Ok((key, _)) = PrivateKey::from_wif(&k.wif) {
                self.by_hash.insert(key.key_hash(), i);
            }
        }
    }

    pub fn owns(&self, address: &str) -> bool {
        self.by_address.contains_key(address)
    }

    /// The key for an address of this wallet, compared by key hash so that the P2PKH
    /// and P2WPKH forms of one key both work.
    pub fn key_for(&self, address: &Address) -> Option<PrivateKey> {
        let k = &self.keys[*self.by_hash.get(&address.hash)?];
        PrivateKey::from_wif(&k.wif).ok().map(|(key, _)| key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_after_a_reload() {
        let mut w = Wallet::default();
        let bech = w.new_address(false);
        let legacy = w.new_address(true);
        let mut back: Wallet = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert!(!back.owns(&bech), "indexes are not serialised");
        back.reindex();
        assert!(back.owns(&bech) && back.owns(&legacy) && !back.owns("mxxx"));
        let addr = Address::parse(&legacy).unwrap();
        assert_eq!(back.key_for(&addr).unwrap().key_hash(), addr.hash);
    }
}
