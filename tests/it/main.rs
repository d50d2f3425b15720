//! Integration tests through the `sylvan` facade, one module per area.

mod util;

mod failures;
mod inspect;
mod lifecycle;
mod links;
mod stacks;
mod threads;
mod time;
