// guest_printf(): the printf subset the guests need, on top of guest_putc().
// Built into guests and into the native compute program alike.
#include "guest.h"

static void put_str(const char *s, int width, int left) {
  int len = 0;
  while (s[len]) len++;
  for (; !left && width > len; width--) guest_putc(' ');
  for (const char *p = s; *p; p++) guest_putc(*p);
  for (; left && width > len; width--) guest_putc(' ');
}

// Formats `value` in `base` into the end of buf[24] and returns its start.
static char *format_u64(char *buf, uint64_t value, unsigned base) {
  char *p = buf + 23;
  *p = '\0';
  do {
    *--p = "0123456789abcdef"[value % base];
    value /= base;
  } while (value);
  return p;
}

static void put_number(uint64_t magnitude, int negative, unsigned base, int width, char pad,
                       int left) {
  char buf[24];
  char *digits = format_u64(buf, magnitude, base);
  if (pad == '0' && !left) {
    int len = (int)(buf + 23 - digits) + negative;
    if (negative) guest_putc('-');
    for (; width > len; width--) guest_putc('0');
    put_str(digits, 0, 0);
    return;
  }
  if (negative) *--digits = '-';
  put_str(digits, width, left);
}

void guest_vprintf(const char *fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      guest_putc(*fmt);
      continue;
    }
    fmt++;
    int left = 0;
    char pad = ' ';
    for (; *fmt == '-' || *fmt == '0'; fmt++) {
      if (*fmt == '-')
        left = 1;
      else
        pad = '0';
    }
    int width = 0;
    for (; *fmt >= '0' && *fmt <= '9'; fmt++) width = width * 10 + *fmt - '0';
    int longs = 0;
    for (; *fmt == 'l'; fmt++) longs++;
    switch (*fmt) {
      case 'c': guest_putc((char)va_arg(ap, int)); break;
      case 's': put_str(va_arg(ap, const char *), width, left); break;
      case 'd': {
        int64_t v = longs >= 2 ? va_arg(ap, long long) : va_arg(ap, int);
        put_number(v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0, 10, width, pad, left);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = longs >= 2 ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
        put_number(v, 0, *fmt == 'u' ? 10 : 16, width, pad, left);
        break;
      }
      case '%': guest_putc('%'); break;
      default:  // unknown conversion: show it rather than guess
        if (!*fmt) return;
        guest_putc('%');
        guest_putc(*fmt);
    }
  }
}

void guest_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  guest_vprintf(fmt, ap);
  va_end(ap);
}
