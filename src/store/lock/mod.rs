//! Who may write an upload: `LocalLocker` for one process, `PgLocker` for
//! several instances on one PostgreSQL database.

pub mod local;
pub mod pg;

pub use local::LocalLocker;
pub use pg::PgLocker;
