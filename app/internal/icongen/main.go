// Command icongen draws the widget's PNG icons into web/: three usage bars
// on the theme colour. `go run ./app/internal/icongen web` regenerates them;
// the outputs are committed.
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
)

var (
	theme = color.RGBA{0x1f, 0x6f, 0x5c, 0xff}
	track = color.RGBA{0xff, 0xff, 0xff, 0x55}
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
	amber = color.RGBA{0xf2, 0xb1, 0x34, 0xff}
)

func main() {
	dir := "web"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for _, ic := range []struct {
		name     string
		size     int
		maskable bool
	}{{"icon-192.png", 192, false}, {"icon-512.png", 512, false}, {"icon-maskable.png", 512, true}} {
		if err := write(filepath.Join(dir, ic.name), draw(ic.size, ic.maskable)); err != nil {
			fmt.Fprintln(os.Stderr, "icongen:", err)
			os.Exit(1)
		}
	}
}

// draw paints a rounded tile (full bleed when maskable, so the platform's
// mask never cuts into transparency) with three bars inside the maskable
// safe zone (the central 80 %).
func draw(size int, maskable bool) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	s := float64(size)
	radius := s * 0.18
	if maskable {
		radius = 0
	}
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			if inRounded(float64(x)+0.5, float64(y)+0.5, 0, 0, s, s, radius) {
				img.Set(x, y, theme)
			}
		}
	}
	inset := s * 0.2
	if maskable {
		inset = s * 0.28
	}
	w := s - 2*inset
	barH := w * 0.16
	gap := (w - 3*barH) / 2
	fills := []float64{0.42, 0.78, 0.18}
	for i, f := range fills {
		y0 := inset + float64(i)*(barH+gap)
		fillRect(img, inset, y0, w, barH, track)
		c := white
		if f >= 0.75 {
			c = amber
		}
		fillRect(img, inset, y0, w*f, barH, c)
	}
	return img
}

func inRounded(x, y, x0, y0, w, h, r float64) bool {
	if x < x0 || y < y0 || x > x0+w || y > y0+h {
		return false
	}
	cx := clamp(x, x0+r, x0+w-r)
	cy := clamp(y, y0+r, y0+h-r)
	dx, dy := x-cx, y-cy
	return dx*dx+dy*dy <= r*r
}

func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

func fillRect(img *image.RGBA, x0, y0, w, h float64, c color.RGBA) {
	r := h / 2
	for y := int(y0); y < int(y0+h)+1; y++ {
		for x := int(x0); x < int(x0+w)+1; x++ {
			if inRounded(float64(x)+0.5, float64(y)+0.5, x0, y0, w, h, r) {
				img.Set(x, y, blend(img.RGBAAt(x, y), c))
			}
		}
	}
}

func blend(dst, src color.RGBA) color.RGBA {
	a := float64(src.A) / 255
	mix := func(d, s uint8) uint8 { return uint8(float64(d)*(1-a) + float64(s)*a) }
	return color.RGBA{mix(dst.R, src.R), mix(dst.G, src.G), mix(dst.B, src.B), 0xff}
}

func write(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("icongen: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("icongen: encoding %s: %w", path, err)
	}
	return f.Close()
}
