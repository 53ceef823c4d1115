//! How the C ABI is declared: one table ([`c_abi!`]) makes both the
//! exported functions and the rows the header is written from
//! ([`CFunction`], [`COpaque`]), so the two cannot drift apart; a Rust type
//! crosses the boundary as the C type its [`CType`] names.
//!
//! cbindgen is not used: it reads functions written out one by one, and a
//! table made by a macro is invisible to it on stable Rust.

/// A Rust type that crosses the C boundary, and how the header spells it.
pub trait CType {
    /// The C type, as written before a parameter's name (`"int64_t"`,
    /// `"const char *"`).
    const C: &'static str;
}

/// One exported function, as the header declares it.
#[derive(Debug)]
pub struct CFunction {
    /// Its symbol.
    pub name: &'static str,
    /// Its doc comment, a line each.
    pub docs: &'static [&'static str],
    /// Its parameters: name and C type.
    pub params: &'static [(&'static str, &'static str)],
    /// Its C return type (`"void"` for none).
    pub returns: &'static str,
}

/// One type the header declares opaque (`typedef struct X X;`).
#[derive(Debug)]
pub struct COpaque {
    /// Its name in C and in Rust.
    pub name: &'static str,
    /// Its doc comment, a line each.
    pub docs: &'static [&'static str],
}

/// Maps Rust types to C types, a line each: `i64 => "int64_t",`.
macro_rules! c_types {
    ($($rust:ty => $c:literal,)*) => {
        $(impl $crate::ffi::abi::CType for $rust {
            const C: &'static str = $c;
        })*
    };
}

/// Declares opaque types: each becomes a public type alias and a row of
/// `TYPES` for the header.
macro_rules! c_opaque {
    ($($(#[doc = $doc:literal])* $name:ident = $rust:ty;)*) => {
        $($(#[doc = $doc])* pub type $name = $rust;)*

        /// The opaque types of the ABI, in the header's order.
        pub const TYPES: &[$crate::ffi::abi::COpaque] = &[$($crate::ffi::abi::COpaque {
            name: stringify!($name),
            docs: &[$($doc),*],
        }),*];
    };
}

/// Declares the ABI's functions. Each entry is written like a Rust
/// function without `pub extern "C"`; it becomes an exported `extern "C"`
/// function with its body run as written (`FUNCTION` names it there, for
/// errors) and a row of `FUNCTIONS` for the header.
macro_rules! c_abi {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    )*) => {
        $(
            $(#[doc = $doc])*
            #[allow(unsafe_code, reason = "exported under its own name: the C ABI")]
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
                #[allow(dead_code, reason = "not every body reports an error")]
                const FUNCTION: &str = stringify!($name);
                $body
            }
        )*

        /// The functions of the ABI, in the header's order.
        pub const FUNCTIONS: &[$crate::ffi::abi::CFunction] = &[$($crate::ffi::abi::CFunction {
            name: stringify!($name),
            docs: &[$($doc),*],
            params: &[$((stringify!($arg), <$ty as $crate::ffi::abi::CType>::C)),*],
            returns: c_abi!(@returns $($ret)?),
        }),*];
    };
    (@returns) => { "void" };
    (@returns $ret:ty) => { <$ret as $crate::ffi::abi::CType>::C };
}

pub(crate) use {c_abi, c_opaque, c_types};
