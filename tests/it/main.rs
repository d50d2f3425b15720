//! Integration tests through the `sylvan` facade, one module per area.

mod util;

mod failures;
mod inspect;
mod lifecycle;
mod links;
mod pool;
mod stacks;
mod sync;
mod threads;
mod time;
mod wait;
