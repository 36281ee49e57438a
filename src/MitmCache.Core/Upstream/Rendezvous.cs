using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace MitmCache.Upstream;

/// <summary>
/// Rendezvous (highest-random-weight) hashing: every member scores every key, and the key belongs to the highest
/// score. Adding a member takes from each other member only the keys it now wins (about 1/N of all); removing one
/// hands only its own keys to their runners-up. Nothing else moves, and no ring or virtual nodes are needed.
/// The score is the first 8 bytes of SHA-256 over member and key: the same on every node, every run and every .NET
/// version (unlike <see cref="string.GetHashCode()"/>), and uniform enough that 3 to 10 parents split evenly.
/// </summary>
internal static class Rendezvous
{
    /// <summary>The member indexes, best first for <paramref name="key"/>.</summary>
    public static int[] Rank(IReadOnlyList<string> members, string key)
    {
        var scores = new ulong[members.Count];
        var order = new int[members.Count];
        for (var i = 0; i < members.Count; i++)
        {
            scores[i] = Score(members[i], key);
            order[i] = i;
        }

        // Descending score; a tie (2^-64) falls back to the operator's order.
        Array.Sort(order, (a, b) => scores[a] != scores[b] ? scores[b].CompareTo(scores[a]) : a.CompareTo(b));
        return order;
    }

    public static ulong Score(string member, string key)
    {
        var bytes = Encoding.UTF8.GetBytes(member + "\n" + key);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes, hash);
        return BinaryPrimitives.ReadUInt64BigEndian(hash);
    }
}
