//! A reader that hands out one byte per `read`, as a slow network might: the
//! tests read every input through it a second time, so that a buffer
//! boundary falls at every position of every record.

use std::io::{self, Read};

pub(crate) struct Trickle<'a>(pub(crate) &'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}
