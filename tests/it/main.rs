//! Integration tests through the `sylvan` facade, one module per area.

mod util;

mod crawler;
mod crawler2;
mod design;
mod examples_gevent;
mod failures;
mod fuzz;
mod gevent;
mod gevent2;
mod inspect;
mod lifecycle;
mod links;
mod local;
mod net;
mod net_gevent;
mod net_peers;
mod net_std;
mod os;
mod pool;
mod probes10;
mod probes11;
mod probes12;
mod probes13;
mod probes14;
mod probes15;
mod probes16;
mod probes17;
mod probes18;
mod probes19;
mod probes20;
mod probes21;
mod probes22;
mod probes23;
mod probes24;
mod probes25;
mod probes26;
mod probes27;
mod probes28;
mod probes29;
mod probes3;
mod probes30;
mod probes31;
mod probes32;
mod probes33;
mod probes34;
mod probes35;
mod probes36;
mod probes37;
mod probes38;
mod probes39;
mod probes4;
mod probes40;
mod probes41;
mod probes42;
mod probes44;
mod probes45;
mod probes46;
mod probes47;
mod probes48;
mod probes49;
mod probes5;
mod probes50;
mod probes51;
mod probes52;
mod probes53;
mod probes54;
mod probes55;
mod probes56;
mod probes57;
mod probes58;
mod probes59;
mod probes6;
mod probes60;
mod probes61;
mod probes62;
mod probes63;
mod probes64;
mod probes65;
mod probes66;
mod probes67;
mod probes68;
mod probes69;
mod probes7;
mod probes71;
mod probes72;
mod probes73;
mod probes74;
mod probes75;
mod probes76;
mod probes77;
mod probes78;
mod probes79;
mod probes8;
mod probes80;
mod probes9;
mod stacks;
mod switch;
mod sync;
mod threads;
mod threads_gevent;
mod threads_io;
mod time;
mod wait;

// The crawler example's self-contained modules, compiled in here so that
// `cargo test --workspace` runs their unit tests: an example built as a
// test harness is no longer built as the program `crawler.rs` runs.
#[path = "../../examples/crawler/links.rs"]
#[allow(dead_code)]
mod crawler_links;
#[path = "../../examples/crawler/report.rs"]
#[allow(dead_code)]
mod crawler_report;
#[path = "../../examples/crawler/robots.rs"]
#[allow(dead_code)]
mod crawler_robots;
