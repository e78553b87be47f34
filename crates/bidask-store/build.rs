//! `sqlx::migrate!` embeds the migrations when the crate compiles, and
//! cargo does not know that it reads them: a migration added or changed
//! would not reach the binary until something else in the crate changed.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
