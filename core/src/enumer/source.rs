//! Where a resolver reads names from. The node client is the real source; tests use
//! in-memory sources that can also fail on demand.

use std::future::Future;
use std::sync::Arc;

use crate::nvs::{NameEntry, NvsClient, NvsError};

/// A read-only view of NVS.
pub trait NameSource: Send + Sync {
    /// The live record of `name`: `Ok(None)` when it does not exist, is deleted or
    /// has expired.
    fn name_show(&self, name: &str) -> impl Future<Output = Result<Option<NameEntry>, NvsError>> + Send;
}

impl NameSource for NvsClient {
    fn name_show(&self, name: &str) -> impl Future<Output = Result<Option<NameEntry>, NvsError>> + Send {
        NvsClient::name_show(self, name)
    }
}

impl<T: NameSource> NameSource for Arc<T> {
    fn name_show(&self, name: &str) -> impl Future<Output = Result<Option<NameEntry>, NvsError>> + Send {
        (**self).name_show(name)
    }
}
