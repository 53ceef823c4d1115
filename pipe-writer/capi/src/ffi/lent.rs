//! Memory a C caller lends for one call: a string to read
//! ([`StatsPipeText`]) and a buffer to fill ([`StatsPipeBuffer`]). The
//! only reads and writes of caller memory in the crate are here.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};
use std::marker::PhantomData;

use super::guard::set_error;
use crate::error::Error;

/// A string lent for one call (`const char *` in C): NULL, or
/// NUL-terminated text that stays valid and unchanged until the call
/// returns. NULL or text that is not UTF-8 records nothing and sets
/// `stats_pipe_last_error`.
///
/// In Rust it is made only from a `&CStr` (or is [`StatsPipeText::NULL`]),
/// so the functions that take one are safe to call.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct StatsPipeText<'a> {
    ptr: *const c_char,
    lent: PhantomData<&'a CStr>,
}

impl<'a> StatsPipeText<'a> {
    /// NULL: for `stats_pipe_start`, the default directory; for a name,
    /// nothing recorded.
    pub const NULL: Self = StatsPipeText {
        ptr: std::ptr::null(),
        lent: PhantomData,
    };

    /// Whether this is NULL.
    pub(crate) fn is_null(self) -> bool {
        self.ptr.is_null()
    }

    /// The text, or `None` (and an error naming `function` and the
    /// argument) for NULL or text that is not UTF-8.
    pub(crate) fn get(self, function: &'static str, argument: Argument) -> Option<&'a str> {
        if self.ptr.is_null() {
            set_error(Error::BadArgument {
                function,
                what: argument.is_null(),
            });
            return None;
        }
        // SAFETY: in Rust a non-NULL `StatsPipeText<'a>` only comes from a
        // `&'a CStr`; from C, the header promises a NUL-terminated string
        // that stays valid and unchanged for the call, which `'a` is.
        let text = unsafe { CStr::from_ptr(self.ptr) }.to_str().ok();
        if text.is_none() {
            set_error(Error::BadArgument {
                function,
                what: argument.is_not_utf8(),
            });
        }
        text
    }
}

impl<'a> From<&'a CStr> for StatsPipeText<'a> {
    fn from(text: &'a CStr) -> Self {
        StatsPipeText {
            ptr: text.as_ptr(),
            lent: PhantomData,
        }
    }
}

/// Which argument a [`StatsPipeText`] is, for the words of its error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Argument {
    /// A stat's name.
    Name,
    /// `stats_pipe_start`'s directory.
    Dir,
}

impl Argument {
    fn is_null(self) -> &'static str {
        match self {
            Argument::Name => "name is NULL",
            Argument::Dir => "dir is NULL",
        }
    }

    fn is_not_utf8(self) -> &'static str {
        match self {
            Argument::Name => "name is not UTF-8",
            Argument::Dir => "dir is not UTF-8",
        }
    }
}

/// A buffer lent for one call (`char *` in C), filled like `snprintf`:
/// NULL (then its length must be 0, and only the length is asked for), or
/// as many writable bytes as the length passed beside it.
///
/// Only C makes one that is not NULL: in Rust there is only
/// [`StatsPipeBuffer::NULL`], so the functions that take one are safe to
/// call (Rust reads the same text through [`crate::runtime`]).
#[repr(transparent)]
#[derive(Debug)]
pub struct StatsPipeBuffer {
    ptr: *mut c_char,
}

impl StatsPipeBuffer {
    /// NULL: ask for the length only.
    pub const NULL: Self = StatsPipeBuffer {
        ptr: std::ptr::null_mut(),
    };

    /// Copies `text` in (at most `len - 1` bytes and a NUL) and returns
    /// its full length.
    pub(crate) fn fill(self, len: usize, text: &str) -> usize {
        if !self.ptr.is_null() && len > 0 {
            let n = text.len().min(len - 1);
            // SAFETY: a non-NULL buffer only comes from C, where the
            // header promises `len` writable bytes; `n < len`, and `text`
            // is ours, so it cannot overlap the caller's buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), self.ptr.cast::<u8>(), n);
                *self.ptr.add(n) = 0;
            }
        }
        text.len()
    }
}
