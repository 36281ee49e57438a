using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MitmCache.Caching;

/// <summary>
/// Asks the kernel to start writing a fill's bytes to disk while the fill goes on (Linux
/// <c>sync_file_range</c> with <c>SYNC_FILE_RANGE_WRITE</c>: it queues the writeback and returns).
/// Left alone, the kernel holds gigabytes dirty, and the fsync before the commit writes them all
/// while every reader waits for the last byte. Advisory: a failure here changes nothing, and the
/// fsync still decides.
/// </summary>
internal static class Writeback
{
    /// <summary>How many written bytes a fill lets pile up before it starts their writeback.</summary>
    public const long Stride = 8 << 20;

    private const uint SyncFileRangeWrite = 2;

    private static volatile bool s_unavailable = !OperatingSystem.IsLinux();

    /// <summary>Starts writeback of <paramref name="count"/> bytes from <paramref name="offset"/>; true if the kernel took the request.</summary>
    public static bool Start(SafeFileHandle handle, long offset, long count)
    {
        if (s_unavailable || count <= 0)
        {
            return false;
        }

        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (SyncFileRange((int)handle.DangerousGetHandle(), offset, count, SyncFileRangeWrite) == 0)
            {
                return true;
            }

            if (Marshal.GetLastPInvokeError() is Errno.NotImplemented or Errno.NotSeekable)
            {
                s_unavailable = true; // this kernel or file system will not do it; stop asking
            }

            return false;
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
                handle.DangerousRelease();
            }
        }
    }

    // DllImport, not LibraryImport: the signature is blittable, and the generator would need unsafe code for the project.
    [DllImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static extern int SyncFileRange(int fd, long offset, long count, uint flags);

    private static class Errno
    {
        public const int NotSeekable = 29; // ESPIPE
        public const int NotImplemented = 38; // ENOSYS
    }
}
