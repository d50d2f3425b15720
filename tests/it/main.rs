//! Integration tests through the `sylvan` facade, one module per area.

mod util;

mod crawler;
mod failures;
mod inspect;
mod lifecycle;
mod links;
mod net;
mod pool;
mod stacks;
mod switch;
mod sync;
mod threads;
mod threads_io;
mod time;
mod wait;
