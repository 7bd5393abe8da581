//! Small dense `f32` kernels of the factor models, and the SIMD dispatch every model's hot loop
//! runs through.
//!
//! They are `#[inline(always)]` so that, inside a function run through [`simd`], they compile for
//! the best instruction set detected at run time (AVX2+FMA on x86-64) without a `target-cpu` flag.
//! Each kernel's summation order is fixed and Rust never contracts or reorders float operations,
//! so results are deterministic and the same whichever instruction set runs them.

/// A loop nest that [`simd`] runs compiled for the best SIMD level of this CPU.
///
/// Implement it with [`simd_kernel!`] for a function marked `#[inline(always)]` (several arguments
/// go in a tuple). A closure would not do: its body is a function of its own, compiled for the
/// baseline (SSE2) unless the optimiser happens to inline it, which it does not for large bodies
/// (the scoring and solver loops ran 4 lanes wide for that reason); so is the shim that calls a
/// function through `FnOnce`.
pub trait Kernel<A> {
    /// What the kernel returns.
    type Output;
    /// Run the kernel (must be `#[inline(always)]`).
    fn run(args: A) -> Self::Output;
}

/// Declare `Name` as the [`Kernel`] that calls `function` (which must be `#[inline(always)]`):
/// `simd_kernel!(Name = function<'a>((&'a [f32], usize)) -> f32);`
macro_rules! simd_kernel {
    ($name:ident = $f:ident<$($lt:lifetime),*>($args:ty) -> $out:ty) => {
        #[doc = concat!("[`Kernel`](crate::models::kernels::Kernel) running [`", stringify!($f), "`].")]
        struct $name;

        impl<$($lt),*> $crate::models::kernels::Kernel<$args> for $name {
            type Output = $out;

            #[inline(always)]
            fn run(args: $args) -> $out {
                $f(args)
            }
        }
    };
}
pub(crate) use simd_kernel;

/// Run kernel `K` on `args` compiled for the best SIMD level of this CPU (runtime dispatch through
/// `pulp`: AVX2+FMA on x86-64 when present).
#[inline(always)]
pub fn simd<K: Kernel<A>, A>(args: A) -> K::Output {
    pulp::Arch::new().dispatch(Dispatched::<K, A>(std::marker::PhantomData, args))
}

/// [`simd`]'s operation: kernel `K` with its arguments.
struct Dispatched<K, A>(std::marker::PhantomData<K>, A);

impl<K: Kernel<A>, A> pulp::WithSimd for Dispatched<K, A> {
    type Output = K::Output;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> K::Output {
        K::run(self.1)
    }
}

const LANES: usize = 16;

/// Dot product of two equally long slices.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    // fixed-order pairwise reduction
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0] + s
}

/// `y += alpha · x`.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `y = A·x` for a dense row-major `k × k` matrix `A`.
#[inline(always)]
pub fn matvec(a: &[f32], x: &[f32], y: &mut [f32]) {
    let k = x.len();
    for (r, yr) in y.iter_mut().enumerate() {
        *yr = dot(&a[r * k..(r + 1) * k], x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    fn dot_of((a, b): (&[f32], &[f32])) -> f32 {
        dot(a, b)
    }
    simd_kernel!(DotOf = dot_of<'a>((&'a [f32], &'a [f32])) -> f32);

    #[test]
    fn dot_matches_naive() {
        for n in [0usize, 1, 7, 16, 33, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64) * (*y as f64))
                .sum();
            let got = simd::<DotOf, _>((&a, &b));
            assert!((got as f64 - naive).abs() < 1e-4, "n={n}: {got} vs {naive}");
        }
    }

    #[test]
    fn matvec_and_axpy() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let mut y = [0.0; 2];
        matvec(&a, &[1.0, 1.0], &mut y);
        assert_eq!(y, [3.0, 7.0]);
        axpy(2.0, &[1.0, -1.0], &mut y);
        assert_eq!(y, [5.0, 5.0]);
    }
}
