/// The static binaries allocate with [`letterbox::alloc::Allocator`] (see there why).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: letterbox::alloc::Allocator = letterbox::alloc::Allocator;

fn main() {
    std::process::exit(letterbox::cli::main());
}
