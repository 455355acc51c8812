#include "maglev.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace switchyard {

bool MaglevTable::IsPrime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

uint32_t MaglevTable::ChooseSize(size_t servers) {
  uint64_t n = std::max<uint64_t>(kMinSize, static_cast<uint64_t>(servers) * 100);
  while (!IsPrime(static_cast<uint32_t>(n))) ++n;
  return static_cast<uint32_t>(n);
}

bool MaglevTable::Build(const std::vector<std::string>& ids, const std::vector<uint32_t>& weights,
                        const std::vector<bool>& eligible, uint32_t size, std::string* error) {
  const size_t n = ids.size();
  if (weights.size() != n || (!eligible.empty() && eligible.size() != n)) {
    *error = "identities, weights and eligible must have the same length";
    return false;
  }
  if (n > 0x7fffffff / 100) {
    *error = "too many servers";
    return false;
  }
  const uint32_t m = size == 0 ? ChooseSize(n) : size;
  if (!IsPrime(m) || m < n || m < 3) {
    *error = "table size must be a prime >= 3 and >= the number of servers";
    return false;
  }

  // Turn order: identities in byte order (std::string compares as unsigned
  // chars), which also exposes duplicates as neighbours.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return ids[a] < ids[b]; });
  for (size_t i = 0; i < n; ++i) {
    if (ids[order[i]].empty()) {
      *error = "server identity must not be empty";
      return false;
    }
    if (i > 0 && ids[order[i]] == ids[order[i - 1]]) {
      *error = "duplicate server identity: " + ids[order[i]];
      return false;
    }
  }

  struct Filler {
    uint32_t index;
    uint32_t weight;
    uint64_t skip;
    uint64_t pos;  // the next candidate entry in this server's permutation
  };
  std::vector<Filler> fillers;
  std::vector<uint8_t> claims(n, 0);
  for (uint32_t i : order) {
    if (weights[i] == 0 || (!eligible.empty() && !eligible[i])) continue;
    const std::string& id = ids[i];
    const uint64_t offset = Xxh64(id.data(), id.size(), kOffsetSeed) % m;
    const uint64_t skip = Xxh64(id.data(), id.size(), kSkipSeed) % (m - 1) + 1;
    fillers.push_back({i, weights[i], skip, offset});
    claims[i] = 1;
  }

  std::vector<int32_t> entries(m, -1);
  uint32_t filled = 0;
  while (!fillers.empty() && filled < m) {
    for (Filler& f : fillers) {
      for (uint32_t turn = 0; turn < f.weight && filled < m; ++turn) {
        // Terminates: the permutation visits every entry, and one is free.
        while (entries[f.pos] >= 0) f.pos = (f.pos + f.skip) % m;
        entries[f.pos] = static_cast<int32_t>(f.index);
        f.pos = (f.pos + f.skip) % m;
        ++filled;
      }
      if (filled == m) break;
    }
  }

  entries_ = std::move(entries);
  claims_ = std::move(claims);
  servers_ = n;
  return true;
}

int32_t MaglevTable::LookupBounded(uint64_t hash, const double* loads, const uint32_t* weights,
                                   double factor, const uint8_t* exclude) const {
  double total = 0, weight = 0;
  for (size_t s = 0; s < servers_; ++s) {
    if (loads[s] < 0) continue;
    total += loads[s];
    weight += weights[s];
  }
  if (weight == 0) return -1;
  const double per_weight = factor * (total + 1) / weight;
  auto usable = [&](uint32_t i) { return loads[i] >= 0 && (exclude == nullptr || !exclude[i]); };
  const int32_t under = LookupEligible(
      hash, [&](uint32_t i) { return usable(i) && loads[i] < std::ceil(per_weight * weights[i]); });
  return under >= 0 ? under : LookupEligible(hash, usable);
}

}  // namespace switchyard
