// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4), pure C++.
//
// Table: M entries (M prime), each naming a server index. Every server has a
// permutation of 0..M-1 given by offset = xxh64(id, kOffsetSeed) mod M and
// skip = xxh64(id, kSkipSeed) mod (M-1) + 1; entry j of its permutation is
// (offset + j*skip) mod M. Servers take turns claiming their next unclaimed
// preferred entry until the table is full.
//
// Weights (integers >= 0): in every round a server with weight w takes w
// consecutive turns, so it claims w/sum(w) of the table, exactly up to the
// last partial round. Weight 0 claims nothing.
//
// Order independence: turns are taken in the byte order of the identity
// strings, never in config order, and the permutations depend only on the
// identity and M, so the same set of (identity, weight) pairs yields the same
// table in every process on every machine. Entries hold the caller's index.
//
// Table size: the smallest prime >= max(65537, 100 x servers). It depends on
// the number of configured servers only (not on how many are eligible), so a
// health change never changes M, which would reshuffle every key.
//
// Ineligible (unhealthy, drained) servers, two strategies:
//  (a) rebuild: Build() with eligible[i] = false; the server claims no entries
//      and the others fill the table as if it were not configured.
//  (b) fallback: keep the full table and use LookupEligible(); when the key's
//      entry names an ineligible server, the key is rehashed (hash.h Rehash)
//      up to kMaxProbes times, then servers are scanned from hash mod n.
//      Only keys of ineligible servers move, and they spread over the rest in
//      proportion to their table share.
//
// Bounded loads (LookupBounded; Mirrokni, Thorup, Zadimoghaddam, "Consistent
// Hashing with Bounded Loads", SODA 2018; HAProxy's hash-balance-factor): the
// same walk as (b), past servers at their bound too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hash.h"

namespace switchyard {

class MaglevTable {
 public:
  static constexpr uint32_t kMinSize = 65537;
  static constexpr int kMaxProbes = 16;

  // Smallest prime >= max(kMinSize, 100 * servers).
  static uint32_t ChooseSize(size_t servers);
  static bool IsPrime(uint32_t n);

  // Builds a table. `weights` and `eligible` (may be empty: all eligible) are
  // parallel to `ids`. size 0 picks ChooseSize(ids.size()). Returns false and
  // sets *error on invalid input: duplicate or empty identity, size not prime
  // or < number of servers, mismatched lengths, more than 2^31-1 servers.
  bool Build(const std::vector<std::string>& ids, const std::vector<uint32_t>& weights,
             const std::vector<bool>& eligible, uint32_t size, std::string* error);

  uint32_t size() const { return static_cast<uint32_t>(entries_.size()); }
  size_t servers() const { return servers_; }
  const std::vector<int32_t>& entries() const { return entries_; }

  // Server index for a key hash, or -1 if no server has a positive weight.
  int32_t Lookup(uint64_t hash) const {
    return entries_.empty() ? -1 : entries_[hash % entries_.size()];
  }

  // Strategy (b). `eligible(i)` says whether server i may take traffic.
  // Returns -1 if no server is eligible.
  template <class Eligible>
  int32_t LookupEligible(uint64_t hash, Eligible&& eligible) const {
    if (servers_ == 0) return -1;
    uint64_t h = hash;
    for (int probe = 0; probe <= kMaxProbes; ++probe) {
      const int32_t s = entries_[h % entries_.size()];
      if (s >= 0 && eligible(static_cast<uint32_t>(s))) return s;
      h = Rehash(h);
    }
    // Rare (most of the table ineligible): a bounded scan over the servers.
    for (size_t i = 0, start = hash % servers_; i < servers_; ++i) {
      const uint32_t s = static_cast<uint32_t>((start + i) % servers_);
      if (claims_[s] && eligible(s)) return static_cast<int32_t>(s);
    }
    return -1;
  }

  // Bounded loads. loads[i]: server i's active requests, or < 0 if it is not
  // eligible; weights as given to Build(); exclude (may be null): non-zero
  // for servers to skip (a retry's earlier tries). Server s may take the key
  // while loads[s] < ceil(factor x (total + 1) x w_s / W), total and W over
  // the eligible servers, the +1 being this request. The bounds sum to more
  // than total + 1, so some server is under its bound; if exclusion leaves
  // none, the bound is dropped. Returns -1 if no server can take the key.
  int32_t LookupBounded(uint64_t hash, const double* loads, const uint32_t* weights, double factor,
                        const uint8_t* exclude) const;

 private:
  std::vector<int32_t> entries_;
  std::vector<uint8_t> claims_;  // server i holds entries (weight > 0, eligible at build)
  size_t servers_ = 0;
};

}  // namespace switchyard
