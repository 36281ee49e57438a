using System.Security.Cryptography;
using System.Text;

namespace MitmCache.Tests.Common;

/// <summary>
/// The key ID format of docker/libtrust, which distribution uses to match a JWT <c>kid</c>
/// to a key in its <c>rootcertbundle</c>: base32 of the first 240 bits of SHA-256 over the
/// DER SubjectPublicKeyInfo, unpadded, in groups of four joined by ':'.
/// </summary>
internal static class LibtrustKeyId
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    public static string FromSubjectPublicKeyInfo(byte[] spkiDer)
    {
        var hash = SHA256.HashData(spkiDer).AsSpan(0, 30);
        var base32 = new StringBuilder(48);
        for (var i = 0; i < hash.Length; i += 5)
        {
            // 5 bytes = 40 bits = 8 base32 characters; 30 bytes divide evenly.
            ulong chunk = 0;
            for (var j = 0; j < 5; j++)
            {
                chunk = (chunk << 8) | hash[i + j];
            }

            for (var shift = 35; shift >= 0; shift -= 5)
            {
                base32.Append(Alphabet[(int)((chunk >> shift) & 31)]);
            }
        }

        var text = base32.ToString();
        return string.Join(':', Enumerable.Range(0, text.Length / 4).Select(g => text.Substring(g * 4, 4)));
    }
}
