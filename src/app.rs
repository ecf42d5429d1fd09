//! The state every handler and worker shares.
use std::sync::Arc;
use std::time::Instant;

use crate::store::Store;
use crate::workers::Workers;

pub struct AppState {
    pub store: Store,
    /// No Meta app is configured: the in-process simulator stands in for Meta.
    pub sandbox: bool,
    pub started: Instant,
    pub workers: Workers,
}

pub type App = Arc<AppState>;
