module github.com/backdrop-rs/backdrop/crates/ffi/go

go 1.24
