using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MitmCache.Caching;

/// <summary>
/// Reads file bytes that are already in the page cache on the calling thread, and sends only a read that would wait
/// for the disk to the thread pool. .NET has no asynchronous file reads on Linux: <see cref="RandomAccess.ReadAsync(SafeFileHandle, Memory{byte}, long, CancellationToken)"/>
/// on a file runs a blocking <c>pread</c> on a pool thread, so every chunk of a response paid a hand-off to another
/// thread and back, even for bytes in memory, which a warm cache's are (and a fill's, just written). Linux's
/// <c>preadv2</c> with <c>RWF_NOWAIT</c> copies what is cached and refuses (<c>EAGAIN</c>) instead of waiting;
/// then, or on a kernel or file system without it, the read goes the pool's way as before.
/// </summary>
internal static class PageCacheRead
{
    private const int NoWait = 8; // RWF_NOWAIT

    private static volatile bool s_unavailable = !OperatingSystem.IsLinux();

    /// <summary>Reads into <paramref name="buffer"/> at <paramref name="offset"/>: from the page cache at once when the bytes are there, else on the thread pool.</summary>
    /// <returns>Bytes read (fewer than asked when only part was cached); 0 at the end of the file.</returns>
    public static ValueTask<int> ReadAsync(SafeFileHandle file, Memory<byte> buffer, long offset, CancellationToken cancellationToken) =>
        TryRead(file, buffer.Span, offset, out var read) ? ValueTask.FromResult(read) : RandomAccess.ReadAsync(file, buffer, offset, cancellationToken);

    /// <summary>Copies what the page cache holds at <paramref name="offset"/>, never waiting for the disk.</summary>
    /// <returns>False when nothing could be read without waiting, or the read failed (the slow way reports why).</returns>
    public static unsafe bool TryRead(SafeFileHandle file, Span<byte> buffer, long offset, out int read)
    {
        read = 0;
        if (s_unavailable || buffer.IsEmpty)
        {
            return false;
        }

        var added = false;
        try
        {
            file.DangerousAddRef(ref added);
            fixed (byte* start = buffer)
            {
                var vector = new IoVector { Base = start, Length = (nuint)buffer.Length };
                var result = ReadVector((int)file.DangerousGetHandle(), &vector, 1, offset, NoWait);
                if (result >= 0)
                {
                    read = (int)result;
                    return true;
                }
            }

            if (Marshal.GetLastPInvokeError() is Errno.NotSupported or Errno.NotImplemented or Errno.Invalid)
            {
                s_unavailable = true; // a kernel before 4.14, or a file system without it: stop asking
            }

            return false; // EAGAIN (not cached), EINTR, or a real error the slow way will report
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            s_unavailable = true;
            return false;
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVector
    {
        public byte* Base;
        public nuint Length;
    }

    // DllImport, as in Writeback: a blittable signature.
    [DllImport("libc", EntryPoint = "preadv2", SetLastError = true)]
    private static extern unsafe nint ReadVector(int fd, IoVector* vectors, int count, long offset, int flags);

    private static class Errno
    {
        public const int Invalid = 22; // EINVAL: flags this kernel does not know
        public const int NotImplemented = 38; // ENOSYS
        public const int NotSupported = 95; // EOPNOTSUPP
    }
}
