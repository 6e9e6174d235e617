// A first-in first-out queue of at most N values in place, for the byte
// buffers of devices. Pushing onto a full queue drops the value, as a
// device's buffer overflows: a guest that never reads loses data, the host
// no memory.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>

namespace bt::devices {

template <class T, std::size_t N>
class BoundedQueue {
 public:
  bool empty() const { return count_ == 0; }
  std::size_t size() const { return count_; }

  void Push(const T& value) {
    if (count_ == N) return;
    values_[(head_ + count_) % N] = value;
    ++count_;
  }

  T Pop() {
    assert(count_ != 0);
    const T value = values_[head_];
    head_ = (head_ + 1) % N;
    --count_;
    return value;
  }

  void Clear() { count_ = 0; }

 private:
  std::array<T, N> values_{};
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

}  // namespace bt::devices
