//! The evaluation report's two charts as PNG: the precision–recall curves of the
//! detectors and the loss per epoch.
//!
//! Written by hand on top of the `png` encoder because a chart of a few polylines
//! needs axes, a grid and numbers on the ticks, while the plotting libraries bring
//! font rendering and image stacks (plotters' bitmap backend needs a TrueType font at
//! run time). Axis titles and the legend are in the report's Markdown next to the image.

use std::path::Path;

const W: usize = 640;
const H: usize = 400;
const LEFT: usize = 56;
const RIGHT: usize = 16;
const TOP: usize = 16;
const BOTTOM: usize = 34;

/// A series: its points and its colour.
pub type Series<'a> = (&'a [(f64, f64)], [u8; 3]);

/// Colours of the report's series, in legend order.
pub const BLUE: [u8; 3] = [31, 119, 180];
/// The plots' second colour.
pub const ORANGE: [u8; 3] = [255, 127, 14];
/// The plots' colour for references (baselines, thresholds).
pub const GREY: [u8; 3] = [127, 127, 127];

/// 3×5 digits and the decimal point, one row of three bits per line, top first.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        _ => return None,
    })
}

struct Canvas {
    rgb: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Canvas { rgb: vec![255; W * H * 3] }
    }

    fn dot(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            let i = (y as usize * W + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A two-pixel-wide line (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.dot(x, y, c);
            self.dot(x + 1, y, c);
            self.dot(x, y + 1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// `text` at twice the glyph size, its top-left corner at (x, y).
    fn text(&mut self, x: i64, y: i64, text: &str) {
        for (k, g) in text.chars().filter_map(glyph).enumerate() {
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.dot(x + k as i64 * 8 + col * 2 + ox, y + row as i64 * 2 + oy, [0, 0, 0]);
                        }
                    }
                }
            }
        }
    }
}

fn label(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws `series` over `x` × `y` with `ticks` grid lines per axis and writes a PNG.
pub fn line_chart(path: &Path, series: &[Series], x: (f64, f64), y: (f64, f64), ticks: usize) -> std::io::Result<()> {
    let mut c = Canvas::new();
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let span = |(lo, hi): (f64, f64)| if hi > lo { hi - lo } else { 1.0 };
    let px = |v: f64| LEFT as i64 + ((v - x.0) / span(x) * pw).round() as i64;
    let py = |v: f64| (H - BOTTOM) as i64 - ((v - y.0) / span(y) * ph).round() as i64;
    for t in 0..=ticks {
        let f = t as f64 / ticks as f64;
        let (vx, vy) = (x.0 + f * span(x), y.0 + f * span(y));
        let grid = [225, 225, 225];
        for yy in TOP..=H - BOTTOM {
            c.dot(px(vx), yy as i64, grid);
        }
        for xx in LEFT..=W - RIGHT {
            c.dot(xx as i64, py(vy), grid);
        }
        let lx = label(vx);
        c.text(px(vx) - lx.len() as i64 * 4, (H - BOTTOM + 8) as i64, &lx);
        let ly = label(vy);
        c.text(LEFT as i64 - 8 - ly.len() as i64 * 8, py(vy) - 5, &ly);
    }
    c.line((LEFT as i64, TOP as i64), (LEFT as i64, (H - BOTTOM) as i64), [0, 0, 0]);
    c.line((LEFT as i64, (H - BOTTOM) as i64), ((W - RIGHT) as i64, (H - BOTTOM) as i64), [0, 0, 0]);
    for (points, colour) in series {
        for pair in points.windows(2) {
            c.line((px(pair[0].0), py(pair[0].1)), (px(pair[1].0), py(pair[1].1)), *colour);
        }
        if let [only] = points {
            c.line((px(only.0) - 2, py(only.1)), (px(only.0) + 2, py(only.1)), *colour);
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, W as u32, H as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(std::io::Error::other)?;
    writer.write_image_data(&c.rgb).map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_png_of_the_stated_size_with_the_series_drawn() {
        let dir = std::env::temp_dir().join(format!("x0-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("pr.png");
        let diagonal = [(0.0, 0.0), (1.0, 1.0)];
        line_chart(&path, &[(&diagonal, BLUE)], (0.0, 1.0), (0.0, 1.0), 5).unwrap_or_else(|e| panic!("{e}"));
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"))));
        let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
        let info = reader.next_frame(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((info.width, info.height), (W as u32, H as u32));
        // The diagonal's midpoint is blue.
        let (mx, my) = (LEFT + (W - LEFT - RIGHT) / 2, H - BOTTOM - (H - TOP - BOTTOM) / 2);
        let i = (my * W + mx) * 3;
        assert_eq!(buf[i..i + 3], BLUE);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
