using System.Collections.Concurrent;

namespace MitmCache.Caching;

/// <summary>
/// Records the index has found, kept in memory for the lookups every cache hit makes (LiteDB costs
/// about 25 µs a lookup: a transaction and a BSON decode). Write-through: a write and a lookup that
/// misses both run under the key's lock, so a slow lookup can never put back a value that a write has
/// just replaced. Absent records are not kept. Bounded: past its capacity the front is emptied.
/// Callers hold <see cref="IndexDatabase"/>'s read lock first (they run inside its Use), always in that order.
/// </summary>
internal sealed class IndexFront<T>(int capacity) where T : class
{
    private readonly ConcurrentDictionary<string, T> _items = new(StringComparer.Ordinal);
    private readonly object[] _stripes = [.. Enumerable.Range(0, 64).Select(_ => new object())];

    public int Count => _items.Count;

    public T? Find(string key, Func<T?> load)
    {
        if (_items.TryGetValue(key, out var found))
        {
            return found;
        }

        lock (Stripe(key))
        {
            if (_items.TryGetValue(key, out found))
            {
                return found;
            }

            found = load();
            if (found is not null)
            {
                Keep(key, found);
            }

            return found;
        }
    }

    /// <summary>Runs the write; then the front holds <paramref name="value"/> (or nothing, when null or when the write throws).</summary>
    public void Write(string key, T? value, Action write)
    {
        lock (Stripe(key))
        {
            _items.TryRemove(key, out _);
            write();
            if (value is not null)
            {
                Keep(key, value);
            }
        }
    }

    private void Keep(string key, T value)
    {
        if (_items.Count >= capacity)
        {
            _items.Clear();
        }

        _items[key] = value;
    }

    private object Stripe(string key) => _stripes[(int)((uint)StringComparer.Ordinal.GetHashCode(key) % (uint)_stripes.Length)];
}
