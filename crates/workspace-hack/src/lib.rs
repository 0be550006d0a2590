//! Empty on purpose: this crate only exists for the dependencies in its Cargo.toml, which unify
//! the features every workspace crate builds its dependencies with (see `.config/hakari.toml`).
